package auth

import (
	"sync"
	"time"
)

// tokenCacheMax bounds the cache; past it, expired entries are dropped and,
// if that is not enough, the cache starts over.
const tokenCacheMax = 10000

// tokenCache remembers tokens that passed full validation, so a caller that
// reuses its token (an MC heartbeating every few seconds with a one-hour
// token) costs a map lookup instead of a signature check on every call.
// An entry never outlives the token's exp.
type tokenCache struct {
	mu      sync.RWMutex
	ttl     time.Duration
	entries map[string]cachedClaims
}

type cachedClaims struct {
	claims Claims
	until  time.Time
}

func (c *tokenCache) get(token string, now time.Time) (*Claims, bool) {
	c.mu.RLock()
	e, ok := c.entries[token]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	cl := e.claims // a copy: callers may not change what later callers see
	return &cl, true
}

func (c *tokenCache) put(token string, cl *Claims, now time.Time) {
	until := now.Add(c.ttl)
	if cl.ExpiresAt == nil {
		return
	}
	if exp := cl.ExpiresAt.Time; exp.Before(until) {
		until = exp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= tokenCacheMax {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= tokenCacheMax {
			clear(c.entries)
		}
	}
	c.entries[token] = cachedClaims{claims: *cl, until: until}
}

// CacheValidTokens makes Validate remember tokens that passed for up to ttl
// (never past their exp), skipping the signature check when the same token
// comes again. A key dropped from the JWKS is then still honoured for up to
// ttl, which the JWKS refresh interval already allows. Call it before the
// validator is in use.
func (v *Validator) CacheValidTokens(ttl time.Duration) {
	v.cache = &tokenCache{ttl: ttl, entries: map[string]cachedClaims{}}
}
