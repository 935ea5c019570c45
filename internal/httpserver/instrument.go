package httpserver

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Instrumenter records <service>_http_requests_total{handler,method,code} and
// <service>_http_request_duration_seconds{handler,method} for each route.
type Instrumenter struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewInstrumenter registers the HTTP metrics of service on reg.
func NewInstrumenter(service string, reg prometheus.Registerer) *Instrumenter {
	i := &Instrumenter{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: service + "_http_requests_total",
			Help: "HTTP requests served, by route, method and status code.",
		}, []string{"handler", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    service + "_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"handler", "method"}),
	}
	reg.MustRegister(i.requests, i.duration)
	return i
}

// Wrap instruments h under the route label name.
func (i *Instrumenter) Wrap(name string, h http.Handler) http.Handler {
	l := prometheus.Labels{"handler": name}
	return promhttp.InstrumentHandlerDuration(i.duration.MustCurryWith(l),
		promhttp.InstrumentHandlerCounter(i.requests.MustCurryWith(l), h))
}
