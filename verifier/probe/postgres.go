package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

// The postgres section's checks.
var postgresChecks = []Spec{
	{ID: "postgres.reachable", Enabled: hasPostgres, Targets: postgresTarget, Vars: postgresVars, Services: postgresNames, Probe: postgresReachable},
	{ID: "postgres.schema", Needs: []string{"postgres.reachable"},
		Enabled: hasPostgres, Targets: postgresTarget, Vars: postgresVars, Services: postgresNames, Probe: postgresSchema},
	{ID: "postgres.storage", Needs: []string{"postgres.reachable"},
		Enabled: hasPostgres, Vars: postgresVars, Services: postgresNames, Probe: postgresStorage,
		Targets: func(c *config.Config) []string { return withPath(postgresTarget(c), c.Postgres.DataDir) }},
}

func hasPostgres(c *config.Config) bool { return c.Postgres != nil }
func postgresTarget(c *config.Config) []string {
	return []string{"postgres (" + c.Postgres.URL.Ref() + ")"}
}
func postgresNames(c *config.Config) []string { return dnsNames(c.Postgres.URL.Value.Reveal()) }
func postgresVars(c *config.Config) map[string]string {
	return map[string]string{"ref": c.Postgres.URL.ShellRef()}
}

// pgConnect opens one read-only session: default_transaction_read_only makes
// any write the verifier might attempt fail in the server itself.
func pgConnect(ctx context.Context, t Target) (*pgx.Conn, string, error) {
	raw := t.Cfg.Postgres.URL.Value.Reveal()
	target := database.Target(raw)
	cc, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, target, classify.At(target, errors.New("the postgres URL does not parse (value not shown)"))
	}
	cc.RuntimeParams["default_transaction_read_only"] = "on"
	cc.RuntimeParams["application_name"] = "dark-tower-verifier"
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, target, classify.At(target, err)
	}
	return conn, target, nil
}

// postgresReachable: a session opens and answers.
func postgresReachable(ctx context.Context, t Target, log *slog.Logger) Result {
	conn, target, err := pgConnect(ctx, t)
	if err != nil {
		return Failed(err, "")
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var ver, db, user string
	err = conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_database(), current_user").Scan(&ver, &db, &user)
	if err != nil {
		return Failed(classify.At(target, err), "")
	}
	return Pass("PostgreSQL %s at %s, database %s as %s", ver, target, db, user)
}

// postgresSchema reads the migration tool's version table with plain SQL:
// the applied version equals the one embedded in this binary, it is not
// dirty, and every required table exists.
func postgresSchema(ctx context.Context, t Target, log *slog.Logger) Result {
	want, err := database.EmbeddedVersion()
	if err != nil {
		return Failed(fmt.Errorf("reading embedded migrations: %w", err), "")
	}
	conn, target, err := pgConnect(ctx, t)
	if err != nil {
		return Failed(err, "")
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var version int64
	var dirty bool
	err = conn.QueryRow(ctx, `SELECT version, dirty FROM "`+database.VersionTable+`" LIMIT 1`).Scan(&version, &dirty)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01":
		return Failed(classify.At(target, classify.Failf(classify.PostgresSchemaMissing, "table %s does not exist (want version %d)", database.VersionTable, want)), "no version table")
	case errors.Is(err, pgx.ErrNoRows):
		return Failed(classify.At(target, classify.Failf(classify.PostgresSchemaMissing, "%s is empty: no migration applied (want version %d)", database.VersionTable, want)), "no version recorded")
	case err != nil:
		return Failed(classify.At(target, err), "")
	}
	obs := fmt.Sprintf("version %d (embedded %d), dirty=%t", version, want, dirty)
	switch {
	case dirty:
		return Failed(classify.At(target, classify.Failf(classify.PostgresSchemaDirty, "schema version %d is dirty", version)), obs)
	case version < int64(want):
		return Failed(classify.At(target, classify.Failf(classify.PostgresSchemaBehind, "schema version %d is behind the embedded %d", version, want)), obs)
	case version > int64(want):
		return Failed(classify.At(target, classify.Failf(classify.PostgresSchemaAhead, "schema version %d is ahead of the embedded %d", version, want)), obs)
	}
	rows, err := conn.Query(ctx, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name = ANY($1)`, database.RequiredTables)
	if err != nil {
		return Failed(classify.At(target, err), obs)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return Failed(classify.At(target, err), obs)
	}
	var missing []string
	for _, tb := range database.RequiredTables {
		if !slices.Contains(have, tb) {
			missing = append(missing, tb)
		}
	}
	if len(missing) > 0 {
		return Failed(classify.At(target, classify.Failf(classify.PostgresTablesMissing, "required tables missing: %s", strings.Join(missing, ", "))), obs)
	}
	return Pass("%s, tables %s present", obs, strings.Join(database.RequiredTables, ", "))
}

// writeErrorWindow is how far back postgres.storage looks in the server log.
const writeErrorWindow = 15 * time.Minute

// postgresStorage: no write failed recently and, in local mode, the data
// directory has room. Postgres counts no failed writes in any statistics
// view (pg_stat_database, pg_stat_wal and pg_stat_io have no error
// columns; pg_stat_archiver only counts archiving), and a failed WAL
// write restarts the server, which resets them. What records the failures
// is the server log: SQLSTATE 53100 (disk full) and 58030 (I/O error). A
// read-only session reads its tail with pg_current_logfile and
// pg_read_binary_file where the role may (a superuser or
// pg_read_server_files, as in local mode) and a logging collector writes
// one; otherwise the evidence says the log is not visible.
func postgresStorage(ctx context.Context, t Target, log *slog.Logger) Result {
	conn, target, err := pgConnect(ctx, t)
	if err != nil {
		return Failed(err, "")
	}
	defer conn.Close(context.WithoutCancel(ctx))
	obs, failures, logPath, err := pgLogWriteErrors(ctx, conn)
	if err != nil {
		return Failed(classify.At(target, err), "")
	}
	free, diskErr := freeSpace(t.Cfg.Postgres.DataDir)
	obs = joinObs(obs, free)
	if len(failures) > 0 {
		return Failed(classify.At(target, classify.FailVars(classify.PostgresWriteFailed, map[string]string{"log": logPath},
			"Postgres failed %d writes in the last %.0f minutes (server log %s); the latest: %s",
			len(failures), writeErrorWindow.Minutes(), logPath, failures[len(failures)-1])), obs)
	}
	if diskErr != nil {
		return Failed(classify.At(target, diskErr), obs)
	}
	return Pass("%s", obs)
}

// pgLogWriteErrors reads the last MiB of the server's current log and
// returns the write failures (SQLSTATE 53100 or 58030) logged in the last
// writeErrorWindow, oldest first, with the log's path.
func pgLogWriteErrors(ctx context.Context, conn *pgx.Conn) (obs string, failures []string, path string, err error) {
	var p *string
	err = conn.QueryRow(ctx, "SELECT coalesce(pg_current_logfile('jsonlog'), pg_current_logfile())").Scan(&p)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		return "server log: not visible to this role", nil, "", nil
	case err != nil:
		return "", nil, "", err
	case p == nil:
		return "server log: none (no logging collector)", nil, "", nil
	}
	path = *p
	// The log's timestamps are in log_timezone; so is since, in the same
	// format, so that the two compare as strings.
	var tail []byte
	var since string
	err = conn.QueryRow(ctx, `SELECT pg_read_binary_file($1, greatest(s.size - $2, 0), $2),
		to_char(now() AT TIME ZONE current_setting('log_timezone') - $3 * interval '1 second', 'YYYY-MM-DD HH24:MI:SS')
		FROM pg_stat_file($1) s`, path, int64(1<<20), int64(writeErrorWindow.Seconds())).Scan(&tail, &since)
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		return "server log " + path + ": not readable by this role", nil, path, nil
	case err != nil:
		return "", nil, path, err
	}
	for _, line := range strings.Split(string(tail), "\n") {
		if f := pgWriteFailure(line, since); f != "" {
			failures = append(failures, f)
		}
	}
	return fmt.Sprintf("server log %s: %d write errors in the last %.0f minutes", path, len(failures), writeErrorWindow.Minutes()), failures, path, nil
}

// pgLogEntry is the part of a jsonlog line postgres.storage reads.
type pgLogEntry struct {
	Timestamp string `json:"timestamp"`
	Severity  string `json:"error_severity"`
	State     string `json:"state_code"`
	Message   string `json:"message"`
}

// pgWriteFailure describes a log line that records a failed write logged
// at or after since: a jsonlog entry with SQLSTATE 53100 or 58030, or a
// line of another format (stderr or csvlog, which start with the
// timestamp) that names ENOSPC.
func pgWriteFailure(line, since string) string {
	if !strings.Contains(line, "53100") && !strings.Contains(line, "58030") && !strings.Contains(line, "No space left on device") {
		return ""
	}
	if strings.HasPrefix(line, "{") {
		var e pgLogEntry
		if json.Unmarshal([]byte(line), &e) != nil || (e.State != "53100" && e.State != "58030") || e.Timestamp < since {
			return ""
		}
		return fmt.Sprintf("%s %s %s %s", e.Timestamp, e.Severity, e.State, e.Message)
	}
	if len(line) < len(since) || line[4] != '-' || line[:len(since)] < since || !strings.Contains(line, "No space left on device") {
		return ""
	}
	return strings.TrimSpace(line)
}
