package gc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/darktower/devstack/gen/internalv1"
)

// ErrNotFound means no controller row has the id.
var ErrNotFound = errors.New("meeting controller not found")

// Controller is one row of meeting_controllers.
type Controller struct {
	ID                   string
	Region               string
	GRPCEndpoint         string
	WebTransportEndpoint string
	CertSHA256           string
	MaxMeetings          int32
	CurrentMeetings      int32
	MaxParticipants      int32
	CurrentParticipants  int32
	Health               internalv1.HealthStatus
	RegisteredAt         time.Time
	LastHeartbeatAt      time.Time
}

// Store is the registry in Postgres. Every GC replica shares it, and all
// times come from the database's clock so replicas agree on staleness.
type Store struct {
	pool *pgxpool.Pool
	// claims bounds the placements that hold a connection across
	// AssignMeeting (ClaimAssignment), so heartbeats, registrations and
	// reads always find one in the pool however many joins arrive.
	claims chan struct{}
}

// NewStore wraps a pool; two of its connections are never taken by claims.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, claims: make(chan struct{}, max(1, int(pool.Config().MaxConns)-2))}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// ErrHeld means a live registration of the id belongs to someone else: the
// caller did not present its registration key.
var ErrHeld = errors.New("meeting controller id is registered by another holder")

// HashKey is what GC stores of a registration key: SHA-256, hex.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Register upserts a controller keyed by id, stores it as pending and makes
// keyHash its holder. An existing row is taken over only when the caller
// presented its key (presentedHash), nobody holds it (deregistered), or it
// is no longer live: unhealthy, or no heartbeat for threshold. Otherwise
// ErrHeld, and nothing changes. A re-registration (restarted pod) resets
// load and health but keeps created_at, the first registration time.
func (s *Store) Register(ctx context.Context, c Controller, keyHash, presentedHash string, threshold time.Duration) error {
	tag, err := s.pool.Exec(ctx, `
INSERT INTO meeting_controllers (controller_id, region, grpc_endpoint, webtransport_endpoint,
    webtransport_cert_sha256, max_meetings, max_participants, health_status, registration_key_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)
ON CONFLICT (controller_id) DO UPDATE SET
    region = EXCLUDED.region,
    grpc_endpoint = EXCLUDED.grpc_endpoint,
    webtransport_endpoint = EXCLUDED.webtransport_endpoint,
    webtransport_cert_sha256 = EXCLUDED.webtransport_cert_sha256,
    max_meetings = EXCLUDED.max_meetings,
    max_participants = EXCLUDED.max_participants,
    current_meetings = 0,
    current_participants = 0,
    health_status = 'pending',
    registration_key_hash = EXCLUDED.registration_key_hash,
    last_heartbeat_at = now(),
    updated_at = now()
WHERE meeting_controllers.registration_key_hash IS NULL
   OR meeting_controllers.registration_key_hash = $9
   OR meeting_controllers.health_status = 'unhealthy'
   OR meeting_controllers.last_heartbeat_at < now() - $10::float8 * interval '1 second'`,
		c.ID, c.Region, c.GRPCEndpoint, c.WebTransportEndpoint, c.CertSHA256, c.MaxMeetings, c.MaxParticipants,
		keyHash, presentedHash, threshold.Seconds())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrHeld
	}
	return nil
}

// HeartbeatSQL is the single statement a heartbeat costs. It is exported so
// the benchmark can time it bare, beside the full gRPC path. Only the
// holder's key matches.
const HeartbeatSQL = `UPDATE meeting_controllers SET max_meetings = $2, current_meetings = $3,
    max_participants = $4, current_participants = $5, health_status = $6,
    last_heartbeat_at = now(), updated_at = now()
WHERE controller_id = $1 AND registration_key_hash = $7`

// Heartbeat records capacity and health. ErrNotFound when the id is unknown
// or nobody holds it (MC registers again), ErrHeld when another holds it.
func (s *Store) Heartbeat(ctx context.Context, id, keyHash string, c *internalv1.Capacity, health string) error {
	tag, err := s.pool.Exec(ctx, HeartbeatSQL, id,
		int32(c.GetMaxMeetings()), int32(c.GetCurrentMeetings()),
		int32(c.GetMaxParticipants()), int32(c.GetCurrentParticipants()), health, keyHash)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return s.whyNot(ctx, id)
	}
	return nil
}

// whyNot explains an UPDATE by id and key that matched nothing.
func (s *Store) whyNot(ctx context.Context, id string) error {
	var held bool
	err := s.pool.QueryRow(ctx, `SELECT registration_key_hash IS NOT NULL FROM meeting_controllers WHERE controller_id = $1`, id).Scan(&held)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case held:
		return ErrHeld
	}
	return ErrNotFound
}

// Deregister marks the row draining, releases it (no holder: the id may be
// registered again at once) and ends its open assignments, so joins go
// elsewhere at once while operators (and the verifier) still see the
// controller leave; the sweeper deletes the row once its heartbeat is stale.
// Only the holder's key matches; a row nobody holds, or none, is already
// gone (false); one held by another is ErrHeld.
func (s *Store) Deregister(ctx context.Context, id, keyHash string) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	tag, err := tx.Exec(ctx, `UPDATE meeting_controllers SET health_status = 'draining', registration_key_hash = NULL, updated_at = now()
WHERE controller_id = $1 AND registration_key_hash = $2`, id, keyHash)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 0 {
		err := s.whyNot(ctx, id)
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
		return false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE meeting_assignments SET ended_at = now() WHERE controller_id = $1 AND ended_at IS NULL`, id); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}

const controllerColumns = `controller_id, region, grpc_endpoint, webtransport_endpoint,
    webtransport_cert_sha256, max_meetings, current_meetings, max_participants,
    current_participants, health_status, created_at, last_heartbeat_at`

func scanController(row pgx.Row) (Controller, error) {
	var c Controller
	var health string
	err := row.Scan(&c.ID, &c.Region, &c.GRPCEndpoint, &c.WebTransportEndpoint, &c.CertSHA256,
		&c.MaxMeetings, &c.CurrentMeetings, &c.MaxParticipants, &c.CurrentParticipants,
		&health, &c.RegisteredAt, &c.LastHeartbeatAt)
	c.Health = healthFromDB(health)
	return c, err
}

func collect(rows pgx.Rows, err error) ([]Controller, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Controller, error) { return scanController(r) })
}

// List returns controllers ordered by id; "" region and UNSPECIFIED health
// match everything.
func (s *Store) List(ctx context.Context, region string, health internalv1.HealthStatus) ([]Controller, error) {
	h, _ := healthToDB(health)
	rows, err := s.pool.Query(ctx, `SELECT `+controllerColumns+` FROM meeting_controllers
WHERE ($1 = '' OR region = $1) AND ($2 = '' OR health_status = $2)
ORDER BY controller_id`, region, h)
	return collect(rows, err)
}

// CountByHealth counts rows per stored health value.
func (s *Store) CountByHealth(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT health_status, count(*) FROM meeting_controllers GROUP BY health_status`)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	var name string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { out[name] = n; return nil })
	return out, err
}

// Candidates are the healthy controllers of region with a heartbeat fresher
// than threshold and room for a meeting and a participant, least loaded
// first: load is the fuller of the two fractions, so a controller with few
// but crowded meetings is not taken for an idle one.
func (s *Store) Candidates(ctx context.Context, region string, threshold time.Duration) ([]Controller, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+controllerColumns+` FROM meeting_controllers
WHERE region = $1 AND health_status = 'healthy'
  AND last_heartbeat_at > now() - $2::float8 * interval '1 second'
  AND current_meetings < max_meetings
  AND current_participants < max_participants
ORDER BY GREATEST(current_meetings::float8 / max_meetings, current_participants::float8 / max_participants), controller_id`,
		region, threshold.Seconds())
	return collect(rows, err)
}

// Live returns the gRPC endpoints and ids of controllers that may still be
// asked to host a meeting: every row that is not unhealthy or draining.
func (s *Store) Live(ctx context.Context) (endpoints, ids map[string]bool, err error) {
	rows, err := s.pool.Query(ctx, `SELECT controller_id, grpc_endpoint FROM meeting_controllers
WHERE health_status NOT IN ('unhealthy', 'draining')`)
	if err != nil {
		return nil, nil, err
	}
	endpoints, ids = map[string]bool{}, map[string]bool{}
	var id, ep string
	_, err = pgx.ForEachRow(rows, []any{&id, &ep}, func() error { endpoints[ep], ids[id] = true, true; return nil })
	return endpoints, ids, err
}

// Assignment is an open meeting assignment and the controller it points to.
type Assignment struct {
	Controller Controller
	Fresh      bool // the controller is healthy and its heartbeat fresher than the threshold
}

// OpenAssignment returns the meeting's open assignment, or nil.
func (s *Store) OpenAssignment(ctx context.Context, meetingID string, threshold time.Duration) (*Assignment, error) {
	var a Assignment
	var health string
	c := &a.Controller
	err := s.pool.QueryRow(ctx, `SELECT mc.controller_id, mc.region, mc.grpc_endpoint, mc.webtransport_endpoint,
    mc.webtransport_cert_sha256, mc.max_meetings, mc.current_meetings, mc.max_participants,
    mc.current_participants, mc.health_status, mc.created_at, mc.last_heartbeat_at,
    mc.health_status = 'healthy' AND mc.last_heartbeat_at > now() - $2::float8 * interval '1 second'
FROM meeting_assignments a JOIN meeting_controllers mc USING (controller_id)
WHERE a.meeting_id = $1 AND a.ended_at IS NULL`, meetingID, threshold.Seconds()).Scan(
		&c.ID, &c.Region, &c.GRPCEndpoint, &c.WebTransportEndpoint, &c.CertSHA256,
		&c.MaxMeetings, &c.CurrentMeetings, &c.MaxParticipants, &c.CurrentParticipants,
		&health, &c.RegisteredAt, &c.LastHeartbeatAt, &a.Fresh)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.Health = healthFromDB(health)
	return &a, nil
}

// EndAssignment closes the meeting's open assignment to controllerID.
func (s *Store) EndAssignment(ctx context.Context, meetingID, controllerID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE meeting_assignments SET ended_at = now()
WHERE meeting_id = $1 AND controller_id = $2 AND ended_at IS NULL`, meetingID, controllerID)
	return err
}

// errNotConfirmed rolls back a claim whose controller did not take the meeting.
var errNotConfirmed = errors.New("claim not confirmed")

// ClaimAssignment makes c the meeting's controller if the meeting has no open
// assignment: it inserts the open row and, in the same transaction, calls
// confirm (AssignMeeting), committing only when confirm succeeds. A
// concurrent claim on the same meeting (another GC replica) waits on the
// unique index until this one commits, then sees it, or rolls back, then
// claims itself: nobody ever answers with a controller that has not taken the
// meeting. The load it adds to c is counted just before the commit, so the
// controller's row is locked only briefly, not across the call.
// inserted is false when another claim holds the meeting.
func (s *Store) ClaimAssignment(ctx context.Context, meetingID string, c Controller, gcID string,
	confirm func() (ok bool, why string)) (inserted, ok bool, why string, err error) {
	select {
	case s.claims <- struct{}{}:
		defer func() { <-s.claims }()
	case <-ctx.Done():
		return false, false, "", fmt.Errorf("waiting to claim %s: %w", meetingID, ctx.Err())
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO meeting_assignments (meeting_id, controller_id, region, assigned_by)
VALUES ($1, $2, $3, $4) ON CONFLICT (meeting_id) WHERE ended_at IS NULL DO NOTHING`,
			meetingID, c.ID, c.Region, gcID)
		if err != nil {
			return err
		}
		if inserted = tag.RowsAffected() == 1; !inserted {
			return nil
		}
		if ok, why = confirm(); !ok {
			return errNotConfirmed
		}
		_, err = tx.Exec(ctx, `UPDATE meeting_controllers SET current_meetings = current_meetings + 1
WHERE controller_id = $1`, c.ID)
		return err
	})
	if errors.Is(err, errNotConfirmed) {
		return true, false, why, nil
	}
	if err != nil {
		return false, false, "", fmt.Errorf("recording assignment of %s to %s: %w", meetingID, c.ID, err)
	}
	return inserted, ok, why, nil
}

// LastController is the controller of the meeting's most recent ended
// assignment, or "": the one MC's Redis may still name as its owner.
func (s *Store) LastController(ctx context.Context, meetingID string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT controller_id FROM meeting_assignments
WHERE meeting_id = $1 AND ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT 1`, meetingID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// SweepResult says what one staleness sweep changed.
type SweepResult struct {
	Ran             bool  // false: another replica held the sweep lock
	MarkedUnhealthy int64 // rows newly marked unhealthy
	DrainingRemoved int64 // stale draining rows deleted
	UnhealthyPurged int64 // unhealthy rows past retention deleted
}

// sweepLockKey is the advisory lock that lets one GC replica sweep at a time.
const sweepLockKey = 0x6463_6763_7377 // "dcgcsw"

// Sweep marks controllers whose last heartbeat is older than threshold as
// unhealthy (removing stale draining ones instead: they were leaving), and
// deletes unhealthy rows with no heartbeat for retention. It runs in one
// transaction under a try-lock, so with two replicas one sweeps and the
// other skips; a heartbeat committed first wins over the stale mark because
// the UPDATE rechecks its WHERE clause on the new row version.
func (s *Store) Sweep(ctx context.Context, threshold, retention time.Duration) (SweepResult, error) {
	var r SweepResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(sweepLockKey)).Scan(&r.Ran); err != nil || !r.Ran {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM meeting_controllers
WHERE health_status = 'draining' AND last_heartbeat_at < now() - $1::float8 * interval '1 second'`, threshold.Seconds())
		if err != nil {
			return err
		}
		r.DrainingRemoved = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `UPDATE meeting_controllers SET health_status = 'unhealthy', updated_at = now()
WHERE health_status NOT IN ('unhealthy', 'draining')
  AND last_heartbeat_at < now() - $1::float8 * interval '1 second'`, threshold.Seconds())
		if err != nil {
			return err
		}
		r.MarkedUnhealthy = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `DELETE FROM meeting_controllers
WHERE health_status = 'unhealthy' AND last_heartbeat_at < now() - $1::float8 * interval '1 second'`, retention.Seconds())
		if err != nil {
			return err
		}
		r.UnhealthyPurged = tag.RowsAffected()
		return nil
	})
	return r, err
}
