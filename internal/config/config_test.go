package config

import (
	"strings"
	"testing"
	"time"
)

func TestMissingAndMalformed(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		read func(*Reader)
		want string
	}{
		{"missing", nil, func(r *Reader) { r.String("A") }, "config: A: required but not set"},
		{"bad hostport", map[string]string{"B": "nope"}, func(r *Reader) { r.HostPort("B", "") }, "config: B: expected host:port"},
		{"bad port", map[string]string{"B": "h:99999"}, func(r *Reader) { r.HostPort("B", "") }, "expected a port number"},
		{"bad url scheme", map[string]string{"U": "ftp://h:1"}, func(r *Reader) { r.URL("U", "http", "https") }, "config: U: expected scheme http or https"},
		{"relative url", map[string]string{"U": "h:1/x"}, func(r *Reader) { r.URL("U", "http") }, "config: U: expected an absolute URL"},
		{"bad int", map[string]string{"N": "ten"}, func(r *Reader) { r.Int("N", 1, 1, 5) }, "config: N: expected an integer from 1 to 5"},
		{"int range", map[string]string{"N": "9"}, func(r *Reader) { r.Int("N", 1, 1, 5) }, "expected an integer from 1 to 5"},
		{"bad duration", map[string]string{"D": "5"}, func(r *Reader) { r.Duration("D", time.Second) }, "config: D: expected a positive duration"},
		{"bad base64", map[string]string{"S": "!!!"}, func(r *Reader) { r.SecretBase64("S", 32) }, "config: S: expected standard base64"},
		{"short base64", map[string]string{"S": "c2hvcnQ="}, func(r *Reader) { r.SecretBase64("S", 32) }, "expected at least 32 bytes"},
		{"long region", map[string]string{"R": strings.Repeat("r", 51)}, func(r *Reader) { r.Region("R") }, "expected 1 to 50 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := FromMap(tt.env)
			tt.read(r)
			err := r.Err()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Err() = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestValidValuesAndSecretsStayOutOfErrors(t *testing.T) {
	r := FromMap(map[string]string{
		"H": "127.0.0.1:80", "U": "postgres://u:topsecretpw@h:5432/db", "N": "3",
		"S": "!!topsecretb64!!", "D": "250ms",
	})
	if got := r.HostPort("H", ""); got != "127.0.0.1:80" {
		t.Errorf("HostPort = %q", got)
	}
	if u := r.URL("U", "postgres"); u == nil || u.Host != "h:5432" {
		t.Errorf("URL = %v", u)
	}
	if got := r.Int("N", 1, 1, 5); got != 3 {
		t.Errorf("Int = %d", got)
	}
	if got := r.Duration("D", time.Second); got != 250*time.Millisecond {
		t.Errorf("Duration = %v", got)
	}
	if got := r.HostPort("MISSING", "0.0.0.0:1"); got != "0.0.0.0:1" {
		t.Errorf("default HostPort = %q", got)
	}
	r.SecretBase64("S", 32)
	r.URL("U", "redis")
	for _, err := range r.Errs() {
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("secret in error: %v", err)
		}
	}
	if len(r.Errs()) != 2 {
		t.Errorf("want 2 errors, got %v", r.Errs())
	}
}
