package testsupport

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

// TestEventuallyEachConditionShape: each shape of condition is polled until
// it holds, and not once more.
func TestEventuallyEachConditionShape(t *testing.T) {
	n := 0
	Eventually(t, 5*time.Second, "an error condition", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	m := 0
	Eventually(t, 5*time.Second, "a bool condition", func() bool { m++; return m == 3 })
	k := 0
	Eventually(t, 5*time.Second, "a bool condition with its last value", func() (bool, string) { k++; return k == 3, strconv.Itoa(k) })
	if n != 3 || m != 3 || k != 3 {
		t.Errorf("polled %d, %d and %d times, want 3 each", n, m, k)
	}
}
