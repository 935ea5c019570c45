package gc

import (
	"fmt"
	"strings"

	"github.com/darktower/devstack/gen/internalv1"
)

// healthNames maps each stored health value (the lowercase strings the
// table's CHECK allows) to its proto enum, in display order.
var healthNames = []struct {
	db string
	pb internalv1.HealthStatus
}{
	{"pending", internalv1.HealthStatus_HEALTH_STATUS_PENDING},
	{"healthy", internalv1.HealthStatus_HEALTH_STATUS_HEALTHY},
	{"degraded", internalv1.HealthStatus_HEALTH_STATUS_DEGRADED},
	{"unhealthy", internalv1.HealthStatus_HEALTH_STATUS_UNHEALTHY},
	{"draining", internalv1.HealthStatus_HEALTH_STATUS_DRAINING},
}

// HealthValues are the five stored health values, lowercase.
func HealthValues() []string {
	out := make([]string, len(healthNames))
	for i, h := range healthNames {
		out[i] = h.db
	}
	return out
}

// healthToDB returns the stored name of h; ok is false for UNSPECIFIED and
// values outside the enum.
func healthToDB(h internalv1.HealthStatus) (string, bool) {
	for _, n := range healthNames {
		if n.pb == h {
			return n.db, true
		}
	}
	return "", false
}

// healthFromDB maps a stored value back to the enum.
func healthFromDB(s string) internalv1.HealthStatus {
	for _, n := range healthNames {
		if n.db == s {
			return n.pb
		}
	}
	return internalv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED
}

// ParseHealth accepts "healthy", "HEALTHY" or "HEALTH_STATUS_HEALTHY" (query
// parameters); "" gives UNSPECIFIED, meaning any.
func ParseHealth(s string) (internalv1.HealthStatus, error) {
	if s == "" {
		return internalv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED, nil
	}
	v := strings.TrimPrefix(strings.ToLower(s), "health_status_")
	for _, n := range healthNames {
		if n.db == v {
			return n.pb, nil
		}
	}
	return 0, fmt.Errorf("health: expected one of %s, got %q", strings.Join(HealthValues(), ", "), s)
}
