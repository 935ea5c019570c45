package auth

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type claimsKey struct{}

// ClaimsFrom returns the validated claims of the caller, if any.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// WithClaims stores claims in ctx (the HTTP middleware uses it too).
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// Public lists method-name prefixes served without a token: health checks
// and reflection, as SPEC section 4 allows.
var Public = []string{"/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"}

// UnaryServerInterceptor demands a bearer token on every RPC not in Public:
// none or an invalid one gives UNAUTHENTICATED; a valid one that misses the
// method's requirement, or a method with no requirement, gives PERMISSION_DENIED.
func UnaryServerInterceptor(v *Validator, rules map[string]Requirement) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := authorize(ctx, v, rules, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is the streaming counterpart (reflection streams).
func StreamServerInterceptor(v *Validator, rules map[string]Requirement) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if _, err := authorize(ss.Context(), v, rules, info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func authorize(ctx context.Context, v *Validator, rules map[string]Requirement, method string) (context.Context, error) {
	for _, p := range Public {
		if strings.HasPrefix(method, p) {
			return ctx, nil
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return nil, status.Error(codes.Unauthenticated, "missing authorization metadata")
	}
	tok, ok := BearerToken(vals[0])
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "authorization is not a Bearer token")
	}
	claims, err := v.Validate(ctx, tok)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	req, ok := rules[method]
	if ok && req.Audience != "" && !slices.Contains(claims.Audience, req.Audience) {
		return nil, status.Errorf(codes.PermissionDenied, "token of %q is for audience %q, not %q", claims.Subject, []string(claims.Audience), req.Audience)
	}
	if !ok || !req.Allows(claims) {
		return nil, status.Errorf(codes.PermissionDenied, "client %q (service_type %q) may not call %s", claims.Subject, claims.ServiceType, method)
	}
	return WithClaims(ctx, claims), nil
}

// BearerToken extracts the token from an "Authorization: Bearer x" value.
func BearerToken(h string) (string, bool) {
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}
