// Package logging builds the JSON slog logger every binary uses.
package logging

import (
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// New returns a JSON logger on stdout tagged with the service name. The level
// comes from LOG_LEVEL (debug, info, warn, error; default info).
func New(service string) *slog.Logger {
	return NewTo(os.Stdout, service, os.Getenv("LOG_LEVEL"))
}

// NewTo is New with an explicit writer and level name.
func NewTo(w io.Writer, service, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})
	return slog.New(h).With("service", service)
}

// MaxValue is how many bytes of one caller-supplied value a log line keeps.
const MaxValue = 256

// Bound cuts a caller-supplied value to MaxValue bytes (on a rune boundary)
// and says how long it was, so no caller can write megabyte log lines.
func Bound(s string) string {
	if len(s) <= MaxValue {
		return s
	}
	cut := MaxValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "...(" + strconv.Itoa(len(s)) + " bytes)"
}
