package gc

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"

	"github.com/darktower/devstack/internal/httpserver"
)

// joinLimiter rate limits joins per caller (the token's subject, a client
// id): a token bucket of burst joins refilled by one every interval. It
// tracks at most maxCallers callers; the one unseen longest is forgotten
// first, so no stream of identities grows it without bound (a forgotten
// caller only gets a full bucket back, and identities come from AC).
type joinLimiter struct {
	every rate.Limit
	burst int

	mu      sync.Mutex
	callers *simplelru.LRU[string, *rate.Limiter]
}

func newJoinLimiter(interval time.Duration, burst, maxCallers int) *joinLimiter {
	callers, err := simplelru.NewLRU[string, *rate.Limiter](maxCallers, nil)
	if err != nil {
		// Only for maxCallers <= 0, which LoadConfig refuses.
		panic(err)
	}
	return &joinLimiter{every: rate.Every(interval), burst: burst, callers: callers}
}

// allow takes one join from caller's bucket. When it is empty it answers
// false and how long until the next join is allowed.
func (l *joinLimiter) allow(caller string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	lim, ok := l.callers.Get(caller)
	if !ok {
		lim = rate.NewLimiter(l.every, l.burst)
		l.callers.Add(caller, lim)
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// tracked is how many callers the limiter remembers.
func (l *joinLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.callers.Len()
}

// retryAfter is an HTTP Retry-After value: whole seconds, rounded up.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}

// limitJoin answers 429 with Retry-After when caller has used its joins.
func (a *App) limitJoin(w http.ResponseWriter, caller string) bool {
	ok, wait := a.joinLimit.allow(caller, time.Now())
	if ok {
		return true
	}
	a.metrics.joins.WithLabelValues("rate_limited").Inc()
	w.Header().Set("Retry-After", retryAfter(wait))
	httpserver.WriteError(w, http.StatusTooManyRequests, "too many joins from "+caller+"; retry after "+retryAfter(wait)+" s")
	return false
}
