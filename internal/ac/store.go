package ac

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"
)

// syncLockKey serialises client syncs of AC replicas starting together, so
// they do not hash and overwrite each other's rows.
const syncLockKey = 0x4143_636c_6e74 // "ACclnt"

// SyncResult counts what a sync changed.
type SyncResult struct {
	Created, Rehashed, Updated, Unchanged, Deactivated int
}

// SyncClients makes service_clients match the clients file: new clients are
// inserted with a bcrypt hash; an existing hash is kept when it still matches
// the file's secret (so restarts and replicas do not churn); clients missing
// from the file are marked inactive.
func SyncClients(ctx context.Context, pool *pgxpool.Pool, clients []Client) (SyncResult, error) {
	var res SyncResult
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(syncLockKey)); err != nil {
			return fmt.Errorf("locking service_clients: %w", err)
		}
		ids := make([]string, 0, len(clients))
		for _, c := range clients {
			ids = append(ids, c.ID)
			if err := syncOne(ctx, tx, c, &res); err != nil {
				return fmt.Errorf("client %q: %w", c.ID, err)
			}
		}
		tag, err := tx.Exec(ctx,
			`UPDATE service_clients SET active = false, updated_at = now()
			 WHERE active AND NOT (client_id = ANY($1))`, ids)
		if err != nil {
			return fmt.Errorf("deactivating removed clients: %w", err)
		}
		res.Deactivated = int(tag.RowsAffected())
		return nil
	})
	return res, err
}

func syncOne(ctx context.Context, tx pgx.Tx, c Client, res *SyncResult) error {
	scopes := strings.Join(c.Scopes, " ")
	var hash, stype, sc string
	var active bool
	err := tx.QueryRow(ctx,
		`SELECT secret_hash, service_type, scopes, active FROM service_clients WHERE client_id = $1 FOR UPDATE`,
		c.ID).Scan(&hash, &stype, &sc, &active)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		h, err := hashSecret(c)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO service_clients (client_id, secret_hash, service_type, scopes, active) VALUES ($1, $2, $3, $4, true)`,
			c.ID, h, c.ServiceType, scopes)
		res.Created++
		return err
	case err != nil:
		return err
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(c.Secret.Reveal())) != nil {
		h, err := hashSecret(c)
		if err != nil {
			return err
		}
		hash = h
		res.Rehashed++
	} else if stype == c.ServiceType && sc == scopes && active {
		res.Unchanged++
		return nil
	} else {
		res.Updated++
	}
	_, err = tx.Exec(ctx,
		`UPDATE service_clients SET secret_hash = $2, service_type = $3, scopes = $4, active = true, updated_at = now()
		 WHERE client_id = $1`, c.ID, hash, c.ServiceType, scopes)
	return err
}

func hashSecret(c Client) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(c.Secret.Reveal()), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hashing client_secret: %w", err)
	}
	return string(h), nil
}

// storedClient is a service_clients row as the token handler needs it.
type storedClient struct {
	hash        []byte
	serviceType string
	scopes      []string
	active      bool
}

// lookupClient returns the row of id, or found=false.
func lookupClient(ctx context.Context, pool *pgxpool.Pool, id string) (storedClient, bool, error) {
	var c storedClient
	var hash, scopes string
	err := pool.QueryRow(ctx,
		`SELECT secret_hash, service_type, scopes, active FROM service_clients WHERE client_id = $1`,
		id).Scan(&hash, &c.serviceType, &scopes, &c.active)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	c.hash = []byte(hash)
	c.scopes = strings.Fields(scopes)
	return c, true, nil
}
