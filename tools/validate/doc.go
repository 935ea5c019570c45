// Package validate checks the Kubernetes side of the dev stack with the real tools: the rendered
// manifests applied server-side to a real kube-apiserver (etcd behind it), NetworkPolicies
// evaluated by cyclonus against SPEC section 7, skaffold.yaml read by Skaffold itself, the Kind
// config and ServiceMonitors decoded strictly by their own types, Dockerfiles parsed by BuildKit.
//
// Tools come from the repository's bin/ (built by `make tools`); a missing tool fails the tests.
package validate
