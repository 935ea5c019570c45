package auth

import (
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestTokenCacheNeverOutlivesExp(t *testing.T) {
	now := time.Now()
	c := &tokenCache{ttl: time.Minute, entries: map[string]cachedClaims{}}
	short := &Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "a", ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Second))}}
	long := &Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "b", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}
	c.put("short", short, now)
	c.put("long", long, now)
	if _, ok := c.get("short", now.Add(9*time.Second)); !ok {
		t.Fatal("short-lived token not cached before its exp")
	}
	if _, ok := c.get("short", now.Add(11*time.Second)); ok {
		t.Fatal("cache answered for a token past its exp")
	}
	if _, ok := c.get("long", now.Add(61*time.Second)); ok {
		t.Fatal("cache answered past its ttl")
	}
	got, ok := c.get("long", now)
	if !ok || got.Subject != "b" {
		t.Fatalf("get = %+v, %v", got, ok)
	}
	got.Subject = "changed"
	if again, _ := c.get("long", now); again.Subject != "b" {
		t.Fatal("a caller's change leaked into the cache")
	}
	if _, ok := c.get("unknown", now); ok {
		t.Fatal("cache answered for a token it never saw")
	}
}

func TestTokenCacheIsBounded(t *testing.T) {
	now := time.Now()
	c := &tokenCache{ttl: time.Minute, entries: map[string]cachedClaims{}}
	cl := &Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "a", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}
	for i := range tokenCacheMax + 10 {
		c.put(strconv.Itoa(i), cl, now)
	}
	if n := len(c.entries); n > tokenCacheMax {
		t.Fatalf("cache holds %d entries, bound is %d", n, tokenCacheMax)
	}
}
