package ac

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/secret"
)

// post sends a raw token request and decodes the JSON answer.
func post(t *testing.T, base, contentType, body string, basic func(*http.Request)) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", base+auth.TokenPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if basic != nil {
		basic(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, raw)
	}
	return resp, out
}

func wantOAuthError(t *testing.T, resp *http.Response, body map[string]any, code int, errCode string) {
	t.Helper()
	if resp.StatusCode != code || body["error"] != errCode {
		t.Fatalf("got %d %v, want %d error=%s", resp.StatusCode, body, code, errCode)
	}
	if d, _ := body["error_description"].(string); d == "" {
		t.Fatalf("no error_description in %v", body)
	}
}

func ccToken(base string, c Client, style oauth2.AuthStyle, scopes ...string) (*oauth2.Token, error) {
	cfg := clientcredentials.Config{
		ClientID: c.ID, ClientSecret: c.Secret.Reveal(), TokenURL: base + auth.TokenPath,
		AuthStyle: style, Scopes: scopes,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cfg.Token(ctx)
}

func retrieveError(t *testing.T, err error, code int, errCode string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != code || re.ErrorCode != errCode {
		t.Fatalf("error %v, want HTTP %d %s", err, code, errCode)
	}
}

func TestTokenEndpoint(t *testing.T) {
	_, pool := migratedPostgres(t)
	mc := client(t, "meeting-controller", auth.ServiceMeetingController, auth.ScopeWriteGC)
	// A secret with characters Basic credentials must form-encode.
	mc.Secret = secret.New("a+b/c:d%e &=é-" + mc.Secret.Reveal())
	gc := client(t, "global-controller", auth.ServiceGlobalController, auth.ScopeWriteMC)
	multi := client(t, "ops", auth.ServiceVerifier, auth.ScopeReadGC, auth.ScopeWriteGC)
	retired := client(t, "retired", auth.ServiceVerifier, auth.ScopeReadGC)
	web := client(t, "web-client", auth.ServiceWebClient, auth.ScopeMeetingJoin)
	seed := newSeed(t)
	ac := startAC(t, pool, seed, []Client{mc, gc, multi, retired, web})
	if _, err := SyncClients(context.Background(), pool, []Client{mc, gc, multi, web}); err != nil {
		t.Fatal(err)
	}
	validator, err := auth.NewStaticValidator(ac.signer.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	checkClaims := func(t *testing.T, tok string, c Client, scope string) {
		t.Helper()
		claims, err := validator.Validate(context.Background(), tok)
		if err != nil {
			t.Fatalf("token does not validate: %v", err)
		}
		if claims.Subject != c.ID || claims.Scope != scope || claims.ServiceType != c.ServiceType ||
			claims.Issuer != auth.Issuer || claims.ID == "" {
			t.Fatalf("claims %+v, want sub=%s scope=%q service_type=%s", claims, c.ID, scope, c.ServiceType)
		}
		if life := claims.ExpiresAt.Sub(claims.IssuedAt.Time); life != time.Hour {
			t.Fatalf("exp - iat = %v, want 1h", life)
		}
		if d := time.Since(claims.IssuedAt.Time); d < -2*time.Second || d > time.Minute {
			t.Fatalf("iat %v is not now", claims.IssuedAt)
		}
	}

	t.Run("form body, client in HTTP Basic", func(t *testing.T) {
		tok, err := ccToken(ac.url, mc, oauth2.AuthStyleInHeader)
		if err != nil {
			t.Fatal(err)
		}
		if tok.TokenType != "Bearer" || time.Until(tok.Expiry) < 59*time.Minute || tok.Extra("scope") != auth.ScopeWriteGC {
			t.Fatalf("token %+v scope %v", tok, tok.Extra("scope"))
		}
		checkClaims(t, tok.AccessToken, mc, auth.ScopeWriteGC)
	})
	t.Run("web-client gets meeting.join (issue 11 item 3)", func(t *testing.T) {
		tok, err := ccToken(ac.url, web, oauth2.AuthStyleInParams)
		if err != nil {
			t.Fatal(err)
		}
		checkClaims(t, tok.AccessToken, web, auth.ScopeMeetingJoin)
	})
	t.Run("form body, client in params", func(t *testing.T) {
		tok, err := ccToken(ac.url, gc, oauth2.AuthStyleInParams)
		if err != nil {
			t.Fatal(err)
		}
		checkClaims(t, tok.AccessToken, gc, auth.ScopeWriteMC)
	})
	t.Run("JSON body", func(t *testing.T) {
		body, _ := json.Marshal(map[string]string{"grant_type": "client_credentials", "client_id": mc.ID, "client_secret": mc.Secret.Reveal()})
		resp, out := post(t, ac.url, "application/json; charset=utf-8", string(body), nil)
		if resp.StatusCode != 200 || out["token_type"] != "Bearer" || out["expires_in"] != float64(3600) || out["scope"] != auth.ScopeWriteGC {
			t.Fatalf("answer %d %v", resp.StatusCode, out)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("Cache-Control %q, want no-store", cc)
		}
		checkClaims(t, out["access_token"].(string), mc, auth.ScopeWriteGC)
	})
	t.Run("JSON body, client in HTTP Basic", func(t *testing.T) {
		resp, out := post(t, ac.url, "application/json", `{"grant_type":"client_credentials"}`, func(r *http.Request) {
			r.SetBasicAuth(url.QueryEscape(gc.ID), url.QueryEscape(gc.Secret.Reveal()))
		})
		if resp.StatusCode != 200 {
			t.Fatalf("answer %d %v", resp.StatusCode, out)
		}
		checkClaims(t, out["access_token"].(string), gc, auth.ScopeWriteMC)
	})
	t.Run("wrong secret", func(t *testing.T) {
		bad := mc
		bad.Secret = secret.New("wrong-" + mc.Secret.Reveal())
		_, err := ccToken(ac.url, bad, oauth2.AuthStyleInHeader)
		retrieveError(t, err, 401, "invalid_client")
		_, err = ccToken(ac.url, bad, oauth2.AuthStyleInParams)
		retrieveError(t, err, 401, "invalid_client")
		resp, out := post(t, ac.url, "application/x-www-form-urlencoded", "grant_type=client_credentials", func(r *http.Request) {
			r.SetBasicAuth(mc.ID, "wrong")
		})
		wantOAuthError(t, resp, out, 401, "invalid_client")
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("401 after Basic without WWW-Authenticate: %v", resp.Header)
		}
	})
	t.Run("unknown client", func(t *testing.T) {
		_, err := ccToken(ac.url, client(t, "nobody", auth.ServiceVerifier, auth.ScopeReadGC), oauth2.AuthStyleInParams)
		retrieveError(t, err, 401, "invalid_client")
	})
	t.Run("no client authentication", func(t *testing.T) {
		resp, out := post(t, ac.url, "application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=meeting-controller", nil)
		wantOAuthError(t, resp, out, 401, "invalid_client")
	})
	t.Run("inactive client", func(t *testing.T) {
		_, err := ccToken(ac.url, retired, oauth2.AuthStyleInHeader)
		retrieveError(t, err, 401, "invalid_client")
	})
	t.Run("unsupported grant type", func(t *testing.T) {
		form := url.Values{"grant_type": {"password"}, "client_id": {mc.ID}, "client_secret": {mc.Secret.Reveal()}}
		resp, out := post(t, ac.url, "application/x-www-form-urlencoded", form.Encode(), nil)
		wantOAuthError(t, resp, out, 400, "unsupported_grant_type")
		resp, out = post(t, ac.url, "application/json", `{"grant_type":"authorization_code"}`, nil)
		wantOAuthError(t, resp, out, 400, "unsupported_grant_type")
		form.Del("grant_type")
		resp, out = post(t, ac.url, "application/x-www-form-urlencoded", form.Encode(), nil)
		wantOAuthError(t, resp, out, 400, "invalid_request")
	})
	t.Run("scope", func(t *testing.T) {
		_, err := ccToken(ac.url, mc, oauth2.AuthStyleInHeader, auth.ScopeWriteMC)
		retrieveError(t, err, 400, "invalid_scope")
		_, err = ccToken(ac.url, mc, oauth2.AuthStyleInHeader, auth.ScopeWriteGC, "service.admin")
		retrieveError(t, err, 400, "invalid_scope")
		// A subset narrows the token; no scope gets all of the client's.
		tok, err := ccToken(ac.url, multi, oauth2.AuthStyleInParams, auth.ScopeWriteGC)
		if err != nil {
			t.Fatal(err)
		}
		checkClaims(t, tok.AccessToken, multi, auth.ScopeWriteGC)
		tok, err = ccToken(ac.url, multi, oauth2.AuthStyleInParams)
		if err != nil {
			t.Fatal(err)
		}
		checkClaims(t, tok.AccessToken, multi, auth.ScopeReadGC+" "+auth.ScopeWriteGC)
	})
	t.Run("bad requests are 400 invalid_request, never 415", func(t *testing.T) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {mc.ID}, "client_secret": {mc.Secret.Reveal()}}.Encode()
		for _, ct := range []string{"", "text/plain", "multipart/form-data; boundary=x", "application/xml"} {
			resp, out := post(t, ac.url, ct, form, nil)
			wantOAuthError(t, resp, out, 400, "invalid_request")
		}
		resp, out := post(t, ac.url, "application/json", `{"grant_type": 7}`, nil)
		wantOAuthError(t, resp, out, 400, "invalid_request")
		resp, out = post(t, ac.url, "application/json", `{"grant_type":"client_credentials"`, nil)
		wantOAuthError(t, resp, out, 400, "invalid_request")
		resp, out = post(t, ac.url, "application/x-www-form-urlencoded", "grant_type=client_credentials&grant_type=client_credentials", nil)
		wantOAuthError(t, resp, out, 400, "invalid_request")
		big := form + "&pad=" + strings.Repeat("x", maxTokenBody)
		resp, out = post(t, ac.url, "application/x-www-form-urlencoded", big, nil)
		wantOAuthError(t, resp, out, 400, "invalid_request")
		// Two client authentication methods at once.
		resp, out = post(t, ac.url, "application/x-www-form-urlencoded", form, func(r *http.Request) {
			r.SetBasicAuth(mc.ID, url.QueryEscape(mc.Secret.Reveal()))
		})
		wantOAuthError(t, resp, out, 400, "invalid_request")
	})
	t.Run("unknown client costs a bcrypt comparison", func(t *testing.T) {
		// Lower bound only, on the fastest of three tries: without the dummy
		// hash an unknown client would answer in about a millisecond.
		fastest := func(id string) time.Duration {
			best := time.Hour
			for range 3 {
				form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {"nope"}}.Encode()
				start := time.Now()
				resp, out := post(t, ac.url, "application/x-www-form-urlencoded", form, nil)
				wantOAuthError(t, resp, out, 401, "invalid_client")
				best = min(best, time.Since(start))
			}
			return best
		}
		known, unknown := fastest(mc.ID), fastest("no-such-client")
		if unknown < known/3 {
			t.Fatalf("unknown client answered in %v, wrong secret in %v: bcrypt skipped", unknown, known)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		text := scrape(t, ac.url)
		for _, want := range []string{
			`ac_token_issuance_total{status="success"}`,
			`ac_token_issuance_total{status="invalid_client"}`,
			`ac_token_issuance_total{status="invalid_request"}`,
			`ac_token_issuance_total{status="unsupported_grant_type"}`,
			`ac_token_issuance_total{status="error"} 0`,
			`ac_token_issuance_duration_seconds_count`,
			`ac_http_requests_total{code="200",handler="token",method="post"}`,
			`ac_http_requests_total{code="401",handler="token",method="post"}`,
			`go_goroutines`,
			`process_cpu_seconds_total`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		// Counted from the subtests above (invalid_scope counts as invalid_request).
		for status, want := range map[string]float64{"success": 7, "invalid_client": 12, "invalid_request": 12, "unsupported_grant_type": 2} {
			if v := metricValue(t, text, `ac_token_issuance_total{status="`+status+`"}`); v != want {
				t.Errorf("ac_token_issuance_total{status=%q} = %v, want %v", status, v, want)
			}
		}
	})
	t.Run("logs name client and outcome, never the secret", func(t *testing.T) {
		lines := ac.logLines("token request")
		if len(lines) < 20 {
			t.Fatalf("only %d token request log lines", len(lines))
		}
		outcomes := map[string]bool{}
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line not JSON: %s", l)
			}
			if _, ok := m["client_id"]; !ok || m["outcome"] == nil || m["service"] != "ac-service" {
				t.Fatalf("log line lacks client_id/outcome/service: %s", l)
			}
			outcomes[m["outcome"].(string)] = true
		}
		for _, o := range []string{"success", "invalid_client", "invalid_request", "unsupported_grant_type"} {
			if !outcomes[o] {
				t.Errorf("no log line with outcome %s", o)
			}
		}
		all := ac.logs.String()
		for _, c := range []Client{mc, gc, multi, retired} {
			for _, s := range []string{c.Secret.Reveal(), url.QueryEscape(c.Secret.Reveal())} {
				if strings.Contains(all, s) {
					t.Fatalf("secret of %s in logs", c.ID)
				}
			}
		}
	})
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(b)
}

func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for l := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			var v float64
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("value of %s: %q", series, rest)
			}
			return v
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

func TestJWKSFromSameSeedIsIdentical(t *testing.T) {
	pool := unreachablePool(t)
	seed := newSeed(t)
	a, b := startAC(t, pool, seed, nil), startAC(t, pool, seed, nil)
	other := startAC(t, pool, newSeed(t), nil)
	get := func(base string) ([]byte, http.Header) {
		resp, err := http.Get(base + auth.JWKSPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("JWKS: %d %s", resp.StatusCode, body)
		}
		return body, resp.Header
	}
	ja, h := get(a.url)
	jb, _ := get(b.url)
	jo, _ := get(other.url)
	if string(ja) != string(jb) {
		t.Fatalf("same seed, different JWKS:\n%s\n%s", ja, jb)
	}
	if string(ja) == string(jo) {
		t.Fatal("different seeds, same JWKS")
	}
	if cc := h.Get("Cache-Control"); !strings.Contains(cc, "max-age=300") || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("headers %v", h)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(ja, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", ja, err)
	}
	k := set.Keys[0]
	if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["kid"] != a.signer.KeyID() || k["kid"] == "" || k["x"] == nil {
		t.Fatalf("key %v", k)
	}
	if _, private := k["d"]; private {
		t.Fatal("JWKS publishes the private key")
	}
	// A token signed by one replica validates against the other's JWKS.
	tok, _, err := a.signer.Sign("meeting-controller", auth.ScopeWriteGC, auth.ServiceMeetingController, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewStaticValidator(jb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatalf("replica B rejects replica A's token: %v", err)
	}
}

// A client_id no stored client can have (NUL, invalid UTF-8, spaces) is the
// caller's mistake: 400 invalid_request naming the field, counted as such,
// never a 500 that logs ERROR and fires ACTokenErrors.
func TestMalformedClientIDIsInvalidRequest(t *testing.T) {
	_, pool := migratedPostgres(t)
	mc := client(t, "meeting-controller", auth.ServiceMeetingController, auth.ScopeWriteGC)
	ac := startAC(t, pool, newSeed(t), []Client{mc})
	bodies := []string{
		"grant_type=client_credentials&client_secret=x&client_id=meeting%00controller",
		"grant_type=client_credentials&client_secret=x&client_id=%FF%FE",
		"grant_type=client_credentials&client_secret=x&client_id=a%20b",
	}
	for _, b := range bodies {
		resp, out := post(t, ac.url, "application/x-www-form-urlencoded", b, nil)
		wantOAuthError(t, resp, out, 400, "invalid_request")
		if d, _ := out["error_description"].(string); !strings.Contains(d, "client_id") {
			t.Errorf("%s: error_description %q does not name client_id", b, d)
		}
	}
	resp, out := post(t, ac.url, "application/json", `{"grant_type":"client_credentials","client_id":"a\u0000b","client_secret":"x"}`, nil)
	wantOAuthError(t, resp, out, 400, "invalid_request")
	resp, out = post(t, ac.url, "application/x-www-form-urlencoded", "grant_type=client_credentials", func(r *http.Request) {
		r.SetBasicAuth("meeting%00controller", "x")
	})
	wantOAuthError(t, resp, out, 400, "invalid_request")

	text := scrape(t, ac.url)
	if v := metricValue(t, text, `ac_token_issuance_total{status="error"}`); v != 0 {
		t.Errorf("ac_token_issuance_total{status=\"error\"} = %v after caller mistakes, want 0 (ACTokenErrors would fire)", v)
	}
	if v := metricValue(t, text, `ac_token_issuance_total{status="invalid_request"}`); v != 5 {
		t.Errorf("invalid_request = %v, want 5", v)
	}
	if strings.Contains(ac.logs.String(), `"level":"ERROR"`) {
		t.Errorf("a caller's malformed client_id logged ERROR:\n%s", ac.logs.String())
	}
}

// Issue 11 item 1: a token asked for one audience (GC's token for one MC)
// carries it in aud and lives at most auth.AudienceTTL; a malformed
// audience is a 400 naming the field.
func TestAudienceBoundToken(t *testing.T) {
	_, pool := migratedPostgres(t)
	gc := client(t, "global-controller", auth.ServiceGlobalController, auth.ScopeWriteMC)
	ac := startAC(t, pool, newSeed(t), []Client{gc})
	v, err := auth.NewStaticValidator(ac.signer.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {gc.ID}, "client_secret": {gc.Secret.Reveal()}, "audience": {"mc-7"}}
	resp, out := post(t, ac.url, "application/x-www-form-urlencoded", form.Encode(), nil)
	if resp.StatusCode != 200 || out["expires_in"] != float64(auth.AudienceTTL/time.Second) {
		t.Fatalf("answer %d %v, want 200 with expires_in %v", resp.StatusCode, out, auth.AudienceTTL.Seconds())
	}
	claims, err := v.Validate(context.Background(), out["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if len(claims.Audience) != 1 || claims.Audience[0] != "mc-7" || claims.ExpiresAt.Sub(claims.IssuedAt.Time) != auth.AudienceTTL {
		t.Fatalf("aud %v, lifetime %v; want [mc-7] and %v", claims.Audience, claims.ExpiresAt.Sub(claims.IssuedAt.Time), auth.AudienceTTL)
	}
	// The same through oauth2's clientcredentials, the way GC asks.
	tok, err := auth.AudienceTokenSource(context.Background(), ac.url, gc.ID, gc.Secret, "mc-8").Token()
	if err != nil {
		t.Fatal(err)
	}
	if claims, err := v.Validate(context.Background(), tok.AccessToken); err != nil || len(claims.Audience) != 1 || claims.Audience[0] != "mc-8" {
		t.Fatalf("AudienceTokenSource: %v %v", claims, err)
	}
	// Without audience: no aud, the configured lifetime.
	form.Del("audience")
	_, out = post(t, ac.url, "application/x-www-form-urlencoded", form.Encode(), nil)
	if claims, err := v.Validate(context.Background(), out["access_token"].(string)); err != nil || len(claims.Audience) != 0 || out["expires_in"] != float64(3600) {
		t.Fatalf("plain token: %v %v %v", claims, err, out)
	}
	form.Set("audience", "mc 7/../x")
	resp, out = post(t, ac.url, "application/x-www-form-urlencoded", form.Encode(), nil)
	wantOAuthError(t, resp, out, 400, "invalid_request")
	if d, _ := out["error_description"].(string); !strings.Contains(d, "audience") {
		t.Fatalf("error_description %q does not name audience", d)
	}
}

// Issue 11 item 4: AC signs a meeting token for GC alone: bound to meeting,
// participant and MC (aud), minutes long. Anyone else is refused.
func TestMeetingToken(t *testing.T) {
	_, pool := migratedPostgres(t)
	ac := startAC(t, pool, newSeed(t), []Client{})
	v, err := auth.NewStaticValidator(ac.signer.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	ask := func(bearer, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, ac.url+auth.MeetingTokenPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	gcTok, _, _ := ac.signer.Sign("global-controller", auth.ScopeWriteMC, auth.ServiceGlobalController, time.Hour)
	body := `{"meeting_id":"standup","participant_id":"p-1","controller_id":"mc-0"}`
	code, out := ask(gcTok, body)
	if code != 200 || out["expires_in"] != float64(auth.MeetingTokenTTL/time.Second) {
		t.Fatalf("GC asking: %d %v", code, out)
	}
	c, err := v.Validate(context.Background(), out["meeting_token"].(string))
	if err != nil || c.Subject != "p-1" || c.MeetingID != "standup" || len(c.Audience) != 1 || c.Audience[0] != "mc-0" ||
		c.Scope != auth.ScopeMeetingSession || c.ExpiresAt.Sub(c.IssuedAt.Time) != auth.MeetingTokenTTL {
		t.Fatalf("meeting token claims %+v, %v", c, err)
	}
	mcTok, _, _ := ac.signer.Sign("meeting-controller", auth.ScopeWriteGC, auth.ServiceMeetingController, time.Hour)
	gcForMC, _, _ := ac.signer.SignFor("global-controller", auth.ScopeWriteMC, auth.ServiceGlobalController, "mc-0", time.Minute)
	foreign, _, _ := newSigner(t, newSeed(t)).Sign("global-controller", auth.ScopeWriteMC, auth.ServiceGlobalController, time.Hour)
	for what, c := range map[string]struct {
		bearer, body string
		want         int
	}{
		"no token":                {"", body, 401},
		"a token of another key":  {foreign, body, 401},
		"MC's token":              {mcTok, body, 403},
		"GC's token for one MC":   {gcForMC, body, 403},
		"bad meeting_id":          {gcTok, `{"meeting_id":"a b","participant_id":"p","controller_id":"mc-0"}`, 400},
		"bad controller_id":       {gcTok, `{"meeting_id":"a","participant_id":"p","controller_id":"mc/0"}`, 400},
		"unknown field":           {gcTok, `{"meeting_id":"a","participant_id":"p","controller_id":"mc-0","admin":true}`, 400},
		"participant_id too long": {gcTok, `{"meeting_id":"a","participant_id":"` + strings.Repeat("p", 129) + `","controller_id":"mc-0"}`, 400},
	} {
		if code, out := ask(c.bearer, c.body); code != c.want {
			t.Errorf("%s: %d %v, want %d", what, code, out, c.want)
		}
	}
}
