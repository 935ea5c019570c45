package runner

import (
	"fmt"
	"slices"

	"github.com/darktower/devstack/verifier/probe"
)

// Levels orders checks into waves: each wave needs only earlier ones. It
// fails on an unknown prerequisite or a cycle.
func Levels(checks []probe.Check) ([][]probe.Check, error) {
	byID := map[string]probe.Check{}
	for _, c := range checks {
		byID[c.ID] = c
	}
	level := map[string]int{}
	var visit func(id string, stack []string) (int, error)
	visit = func(id string, stack []string) (int, error) {
		if l, ok := level[id]; ok {
			return l, nil
		}
		if slices.Contains(stack, id) {
			return 0, fmt.Errorf("dependency cycle: %v -> %s", stack, id)
		}
		c, ok := byID[id]
		if !ok {
			return 0, fmt.Errorf("%s needs %s, which is not configured", stack[len(stack)-1], id)
		}
		l := 0
		for _, d := range c.Deps {
			dl, err := visit(d, append(stack, id))
			if err != nil {
				return 0, err
			}
			l = max(l, dl+1)
		}
		level[id] = l
		return l, nil
	}
	var out [][]probe.Check
	for _, c := range checks {
		l, err := visit(c.ID, nil)
		if err != nil {
			return nil, err
		}
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], c)
	}
	return out, nil
}
