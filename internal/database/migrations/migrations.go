// Package migrations embeds the schema, so db-migrate, the services' tests
// and the verifier all agree on one version.
package migrations

import "embed"

// FS holds the golang-migrate files NNNNNN_name.{up,down}.sql.
//
//go:embed *.sql
var FS embed.FS
