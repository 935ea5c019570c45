package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/verifier/classify"
)

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
		return Failed(classify.At(target, classify.Failf("postgres.schema-missing", "table %s does not exist (want version %d)", database.VersionTable, want)), "no version table")
	case errors.Is(err, pgx.ErrNoRows):
		return Failed(classify.At(target, classify.Failf("postgres.schema-missing", "%s is empty: no migration applied (want version %d)", database.VersionTable, want)), "no version recorded")
	case err != nil:
		return Failed(classify.At(target, err), "")
	}
	obs := fmt.Sprintf("version %d (embedded %d), dirty=%t", version, want, dirty)
	switch {
	case dirty:
		return Failed(classify.At(target, classify.Failf("postgres.schema-dirty", "schema version %d is dirty", version)), obs)
	case version < int64(want):
		return Failed(classify.At(target, classify.Failf("postgres.schema-behind", "schema version %d is behind the embedded %d", version, want)), obs)
	case version > int64(want):
		return Failed(classify.At(target, classify.Failf("postgres.schema-ahead", "schema version %d is ahead of the embedded %d", version, want)), obs)
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
		return Failed(classify.At(target, classify.Failf("postgres.tables-missing", "required tables missing: %s", strings.Join(missing, ", "))), obs)
	}
	return Pass("%s, tables %s present", obs, strings.Join(database.RequiredTables, ", "))
}
