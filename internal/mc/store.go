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
// A meeting without participants expires after ARGV[7] ms (the idle TTL);
// a repeated assignment (another join) restarts that clock, while a meeting
// with participants has no TTL (sessions persist it).
//
// Returns 1 already assigned here, 2 newly assigned, 0 at capacity, 3 held
// by another controller.
var assignScript = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 'controller_id')
if owner == ARGV[2] then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'status', 'active')
  if redis.call('PTTL', KEYS[1]) > 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[7])
  end
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
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[2], ARGV[1])
return 2
`)

// pruneScript drops from a controller's set the meetings whose hash has
// expired (ended), and with ARGV[1] > 0 gives every remaining meeting
// without a TTL that many ms: after a restart no session holds them, so
// they end after the grace instead of living on. Returns how many it dropped.
var pruneScript = redis.NewScript(`
local dropped = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = 'meeting:' .. m
  if redis.call('EXISTS', k) == 0 then
    redis.call('SREM', KEYS[1], m)
    dropped = dropped + 1
  elseif tonumber(ARGV[1]) > 0 and redis.call('PTTL', k) == -1 then
    redis.call('PEXPIRE', k, ARGV[1])
  end
end
return dropped
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

func (s *store) assign(ctx context.Context, meetingID, assignedBy, previous string, maxMeetings int, idle time.Duration, now time.Time) (assignResult, error) {
	n, err := assignScript.Run(ctx, s.rdb,
		[]string{meetingKey(meetingID), controllerMeetingsKey(s.id)},
		meetingID, s.id, assignedBy, now.UTC().Format(time.RFC3339), maxMeetings, previous, idle.Milliseconds(),
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

// prune drops ended meetings from this controller's set; with expireLeft
// > 0 it also gives meetings without a TTL that lifetime (see pruneScript).
func (s *store) prune(ctx context.Context, expireLeft time.Duration) (int, error) {
	return pruneScript.Run(ctx, s.rdb, []string{controllerMeetingsKey(s.id)}, expireLeft.Milliseconds()).Int()
}

// hold keeps a meeting alive while it has participants (no TTL); release
// gives it grace once the last one left.
func (s *store) hold(ctx context.Context, meetingID string) error {
	return s.rdb.Persist(ctx, meetingKey(meetingID)).Err()
}

func (s *store) release(ctx context.Context, meetingID string, grace time.Duration) error {
	return s.rdb.PExpire(ctx, meetingKey(meetingID), grace).Err()
}

// meetings is how many meetings this controller hosts.
func (s *store) meetings(ctx context.Context) (int64, error) {
	return s.rdb.SCard(ctx, controllerMeetingsKey(s.id)).Result()
}
