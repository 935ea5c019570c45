package mc

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis layout (contract): hash meeting:{meeting_id} with controller_id,
// assigned_by, assigned_at (RFC 3339) and status="active"; set
// mc:{controller_id}:meetings with the meetings a controller hosts.
func meetingKey(meetingID string) string     { return "meeting:" + meetingID }
func controllerMeetingsKey(id string) string { return "mc:" + id + ":meetings" }

// assignScript checks capacity and writes both keys atomically, so concurrent
// assignments cannot overshoot MC_MAX_MEETINGS. A meeting this controller
// already hosts is accepted again unchanged (GC may retry). A meeting another
// controller holds is taken over only when GC names that controller as the
// one it moves the meeting from (ARGV[6]); otherwise it is refused, so two
// placements that raced never leave Redis and GC's registry disagreeing.
//
// Returns 1 already assigned here, 2 newly assigned, 0 at capacity, 3 held
// by another controller.
var assignScript = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 'controller_id')
if owner == ARGV[2] then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'status', 'active')
  return 1
end
if owner and owner ~= ARGV[6] then
  return 3
end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  return 0
end
if owner then
  redis.call('SREM', 'mc:' .. owner .. ':meetings', ARGV[1])
end
redis.call('HSET', KEYS[1], 'controller_id', ARGV[2], 'assigned_by', ARGV[3], 'assigned_at', ARGV[4], 'status', 'active')
redis.call('SADD', KEYS[2], ARGV[1])
return 2
`)

type assignResult int

const (
	assignFull assignResult = iota
	assignExisting
	assignNew
	assignHeldElsewhere
)

type store struct {
	rdb *redis.Client
	id  string
}

func (s *store) assign(ctx context.Context, meetingID, assignedBy, previous string, maxMeetings int, now time.Time) (assignResult, error) {
	n, err := assignScript.Run(ctx, s.rdb,
		[]string{meetingKey(meetingID), controllerMeetingsKey(s.id)},
		meetingID, s.id, assignedBy, now.UTC().Format(time.RFC3339), maxMeetings, previous,
	).Int()
	if err != nil {
		return 0, err
	}
	return assignResult(n), nil
}

// hosts reports whether meetingID is assigned to this controller and active.
func (s *store) hosts(ctx context.Context, meetingID string) (bool, error) {
	v, err := s.rdb.HMGet(ctx, meetingKey(meetingID), "controller_id", "status").Result()
	if err != nil {
		return false, err
	}
	owner, _ := v[0].(string)
	status, _ := v[1].(string)
	return owner == s.id && status == "active", nil
}

// meetings is how many meetings this controller hosts.
func (s *store) meetings(ctx context.Context) (int64, error) {
	return s.rdb.SCard(ctx, controllerMeetingsKey(s.id)).Result()
}
