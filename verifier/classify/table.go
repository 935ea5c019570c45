package classify

// Class names an error class: what reports print, and the key of its row.
type Class string

// entry is one row of the error-class table: the likely cause and the next
// command, in local mode and (when different) in the cluster. Placeholders:
// {target} {host} {port} {check} and the Info.Vars keys (e.g. {ref}, the
// credential reference such as $REDIS_PASSWORD).
type entry struct {
	cause    string
	local    string
	cluster  string
	definite bool // the same answer twice ends the check at once
}

const (
	redisCLI      = `REDISCLI_AUTH="{ref}" redis-cli -h {host} -p {port}`
	redisPod      = `kubectl -n dark-tower exec statefulset/redis -- redis-cli` // the pod has REDISCLI_AUTH
	psqlLocal     = `psql "{ref}" -c '\conninfo'`
	psqlPod       = `kubectl -n dark-tower exec statefulset/postgres -- psql -U darktower -d dark_tower`
	grpcurlHealth = `grpcurl -plaintext {target} grpc.health.v1.Health/Check`
)

// table holds every class's row. Each area below declares its classes just
// above its rows, so adding a class is one place.
var table = rows(netRows, redisRows, postgresRows, acRows, gcRows, mcRows, prometheusRows, localRows, k8sRows, otherRows)

// rows merges the areas; a class with two rows would make one of them dead.
func rows(areas ...map[Class]entry) map[Class]entry {
	t := map[Class]entry{}
	for _, a := range areas {
		for c, e := range a {
			if _, dup := t[c]; dup {
				panic("classify: two rows for " + string(c))
			}
			t[c] = e
		}
	}
	return t
}

// Network.
const (
	NetRefused Class = "net.refused"
	NetDNS     Class = "net.dns"
	NetTimeout Class = "net.timeout"
	NetReset   Class = "net.reset"
)

var netRows = map[Class]entry{
	NetRefused: {cause: "nothing accepts connections at {target}: the process is down, still starting, or the address/port is wrong",
		local:   "ss -ltnup | grep ':{port} ' ; make status",
		cluster: "kubectl -n dark-tower get pods,endpoints -o wide"},
	NetDNS: {cause: "the name in {target} does not resolve: wrong Service name or namespace, or DNS (UDP and TCP 53) is blocked by NetworkPolicy",
		local:   "getent hosts {host}",
		cluster: "kubectl -n dark-tower get svc && kubectl -n dark-tower get networkpolicy"},
	NetTimeout: {cause: "{target} did not answer in time: a NetworkPolicy dropping the traffic, a hung process, or an overloaded machine",
		local:   "curl -sv --max-time 5 http://{target}/ ; top -bn1 | head -15",
		cluster: "kubectl -n dark-tower get networkpolicy && kubectl -n dark-tower top pods"},
	NetReset: {cause: "{target} closed the connection: the process crashed or restarted mid-request, or speaks another protocol",
		local: "make status", cluster: "kubectl -n dark-tower get pods && kubectl -n dark-tower get events --sort-by=.lastTimestamp | tail"},
}

// Redis.
const (
	RedisWrongPassword         Class = "redis.wrong-password"
	RedisNoAuth                Class = "redis.noauth"
	RedisNoPasswordConfigured  Class = "redis.no-password-configured"
	RedisLoading               Class = "redis.loading"
	RedisMisconf               Class = "redis.misconf"
	RedisAuthNotEnforced       Class = "redis.auth-not-enforced"
	RedisWrongPasswordAccepted Class = "redis.wrong-password-accepted"
	RedisAOFOff                Class = "redis.aof-off"
	RedisAOFWriteFailed        Class = "redis.aof-write-failed"
	RedisAOFRewriteFailed      Class = "redis.aof-rewrite-failed"
	RedisAOFTruncated          Class = "redis.aof-truncated"
	RedisError                 Class = "redis.error"
)

var redisRows = map[Class]entry{
	RedisWrongPassword: {cause: "Redis refused the password from {ref} (WRONGPASS): the verifier's secret and Redis's requirepass differ",
		local: redisCLI + " ping", cluster: "kubectl -n dark-tower get secret redis-credentials -o yaml  # compare with the verifier's password; then: " + redisPod + " ping", definite: true},
	RedisNoAuth: {cause: "Redis demands a password and none was sent (NOAUTH)",
		local: redisCLI + " ping", cluster: redisPod + " ping", definite: true},
	RedisNoPasswordConfigured: {cause: "Redis has no password configured but the verifier sent one: requirepass is missing from redis.conf",
		local: `redis-cli -h {host} -p {port} CONFIG GET requirepass`, cluster: redisPod + " CONFIG GET requirepass", definite: true},
	RedisLoading: {cause: "Redis is loading its AOF/RDB into memory after a restart (LOADING); it answers once loaded",
		local: redisCLI + " INFO persistence", cluster: redisPod + " INFO persistence"},
	RedisMisconf: {cause: "Redis refuses writes because it cannot persist (MISCONF): the data directory is full or not writable",
		local: redisCLI + " INFO persistence", cluster: redisPod + " INFO persistence"},
	RedisAuthNotEnforced: {cause: "Redis answers clients that send no password: requirepass is not set, so anyone who reaches the port can read and change meeting state",
		local: `redis-cli -h {host} -p {port} ping   # PONG here proves it`, cluster: `kubectl -n dark-tower exec statefulset/redis -- redis-cli ping`, definite: true},
	RedisWrongPasswordAccepted: {cause: "Redis accepted a made-up password: the default user is nopass or ACLs are open",
		local: redisCLI + " ACL LIST", cluster: redisPod + " ACL LIST", definite: true},
	RedisAOFOff: {cause: "append-only persistence is off (appendonly no): a Redis restart loses every meeting assignment",
		local: redisCLI + " CONFIG GET appendonly", cluster: redisPod + " CONFIG GET appendonly", definite: true},
	RedisAOFWriteFailed: {cause: "Redis's last AOF write failed: the disk is full or the volume is read-only",
		local: redisCLI + " INFO persistence", cluster: redisPod + " INFO persistence"},
	RedisAOFRewriteFailed: {cause: "Redis's last AOF rewrite failed: disk space or fork failure",
		local: redisCLI + " INFO persistence", cluster: redisPod + " INFO persistence"},
	RedisAOFTruncated: {cause: "Redis found a torn tail in its append-only file when it started (a crash or a full disk mid-write) and, with aof-load-truncated yes, cut it off and started anyway: every write after that offset (meeting assignments, participants) is gone",
		local: `grep -n -B1 -A1 'Truncating the AOF' {log}   # what was cut; restarting Redis (make down && make up) clears this verdict, not the loss`, definite: true},
	RedisError: {cause: "Redis answered with an error", local: redisCLI + " ping", cluster: redisPod + " ping"},
}

// Postgres.
const (
	PostgresWrongPassword      Class = "postgres.wrong-password"
	PostgresNotAuthorized      Class = "postgres.not-authorized"
	PostgresDatabaseMissing    Class = "postgres.database-missing"
	PostgresStarting           Class = "postgres.starting"
	PostgresTooManyConnections Class = "postgres.too-many-connections"
	PostgresSchemaMissing      Class = "postgres.schema-missing"
	PostgresSchemaBehind       Class = "postgres.schema-behind"
	PostgresSchemaAhead        Class = "postgres.schema-ahead"
	PostgresSchemaDirty        Class = "postgres.schema-dirty"
	PostgresTablesMissing      Class = "postgres.tables-missing"
	PostgresReadOnlyViolation  Class = "postgres.read-only-violation"
	PostgresError              Class = "postgres.error"
	PostgresWriteFailed        Class = "postgres.write-failed"
)

var postgresRows = map[Class]entry{
	PostgresWrongPassword: {cause: "Postgres rejected the password in {ref} (SQLSTATE 28P01): the Secret and the database role's password differ",
		local: psqlLocal, cluster: psqlPod + ` -c '\du'`, definite: true},
	PostgresNotAuthorized: {cause: "Postgres refused the role or host (SQLSTATE 28000): pg_hba.conf or a missing role",
		local: psqlLocal, cluster: psqlPod + ` -c '\du'`, definite: true},
	PostgresDatabaseMissing: {cause: "the database named in {ref} does not exist (SQLSTATE 3D000): wrong database name or the database was never created",
		local: `psql "{ref}" -l`, cluster: psqlPod + ` -l`, definite: true},
	PostgresStarting: {cause: "Postgres is starting up or recovering (SQLSTATE 57P03); it accepts connections once recovery ends",
		local: `pg_isready -h {host} -p {port}`, cluster: "kubectl -n dark-tower logs statefulset/postgres --tail=30"},
	PostgresTooManyConnections: {cause: "Postgres has no free connection slots (SQLSTATE 53300): a client leaks connections",
		local: `psql "{ref}" -c 'select usename, count(*) from pg_stat_activity group by 1'`, cluster: psqlPod + ` -c 'select usename, count(*) from pg_stat_activity group by 1'`},
	PostgresSchemaMissing: {cause: "the migration version table does not exist: db-migrate never ran against this database",
		local: "go run ./cmd/db-migrate", cluster: "kubectl -n dark-tower get job db-migrate && kubectl -n dark-tower logs job/db-migrate"},
	PostgresSchemaBehind: {cause: "the database is at an older migration than the binaries embed: db-migrate has not applied the newest migrations",
		local: "go run ./cmd/db-migrate", cluster: "kubectl -n dark-tower logs job/db-migrate"},
	PostgresSchemaAhead: {cause: "the database is at a newer migration than this verifier embeds: the verifier (or the services) are older than the schema",
		local: "git log --oneline -3 -- internal/database/migrations", cluster: "kubectl -n dark-tower get deploy -o wide"},
	PostgresSchemaDirty: {cause: "a migration failed half-way and left the version dirty: it needs a person to fix the schema and force the version",
		local:   `psql "{ref}" -c 'select * from schema_migrations'  # fix by hand, then: go run ./cmd/db-migrate force <version>`,
		cluster: "kubectl -n dark-tower logs job/db-migrate  # fix by hand, then run db-migrate force <version>", definite: true},
	PostgresTablesMissing: {cause: "required tables are missing although the version says applied: someone dropped them or migrations were forced",
		local: `psql "{ref}" -c '\dt'`, cluster: psqlPod + ` -c '\dt'`},
	PostgresReadOnlyViolation: {cause: "a statement tried to write inside the verifier's read-only session (a verifier bug)", local: "git log -3 -- verifier/"},
	PostgresError:             {cause: "Postgres answered with an error", local: psqlLocal, cluster: psqlPod},
	PostgresWriteFailed: {cause: "Postgres could not write its files recently (SQLSTATE 53100 disk full or 58030 I/O error in its log): inserts and updates fail, and a failed WAL write restarts the server",
		local: `df -h "$(dirname {log})" && grep -c -e 53100 -e 58030 {log}`, cluster: "kubectl -n dark-tower exec statefulset/postgres -- df -h /var/lib/postgresql/data", definite: true},
}

// AC.
const (
	ACInvalidClient    Class = "ac.invalid-client"
	ACClientNotAllowed Class = "ac.client-not-allowed"
	ACServerError      Class = "ac.server-error"
	ACTokenRefused     Class = "ac.token-refused"
	ACHTTPStatus       Class = "ac.http-status"
	ACJWKSInvalid      Class = "ac.jwks-invalid"
	ACJWKSMismatch     Class = "ac.jwks-mismatch"
	ACTokenInvalid     Class = "ac.token-invalid"
	ACTokenClaims      Class = "ac.token-claims"
)

var acRows = map[Class]entry{
	ACInvalidClient: {cause: "AC does not accept the verifier's client: client_id unknown or inactive, or the secret in {ref} differs from AC_CLIENTS_FILE",
		local: "grep -n -A3 'client_id: verifier' \"$AC_CLIENTS_FILE\"", cluster: "kubectl -n dark-tower logs deploy/ac-service --tail=100 | grep -i verifier  # then compare secrets ac-clients and verifier-client", definite: true},
	ACClientNotAllowed: {cause: "AC knows the client but refuses the grant or scope", local: "grep -n -A4 'client_id: verifier' \"$AC_CLIENTS_FILE\"", definite: true},
	ACServerError:      {cause: "AC failed to issue a token (5xx): usually its database is unreachable", local: "curl -s {target}/ready", cluster: "kubectl -n dark-tower logs deploy/ac-service --tail=50"},
	ACTokenRefused:     {cause: "AC refused the token request", local: "curl -s -u verifier:\"{ref}\" -d grant_type=client_credentials {target}/api/v1/auth/service/token"},
	ACHTTPStatus:       {cause: "AC answered with an unexpected HTTP status", local: "curl -si {target}", cluster: "kubectl -n dark-tower logs deploy/ac-service --tail=50"},
	ACJWKSInvalid:      {cause: "the JWKS is not a set of Ed25519 (OKP) keys with kid: AC serves something else at that path", local: "curl -s {target}"},
	ACJWKSMismatch: {cause: "AC replicas publish different keys: AC_SIGNING_KEY differs between replicas, so tokens from one fail on the other",
		local: "for u in {target}; do curl -s $u/.well-known/jwks.json; echo; done", cluster: "kubectl -n dark-tower get secret ac-signing-key -o yaml && kubectl -n dark-tower rollout restart deploy/ac-service"},
	ACTokenInvalid: {cause: "the token AC issued does not validate against AC's own JWKS: wrong issuer, algorithm or key id", local: "curl -s {target}/.well-known/jwks.json"},
	ACTokenClaims: {cause: "the token lacks the verifier's scope or service_type: the client's entry in AC_CLIENTS_FILE is wrong",
		local: "grep -n -A4 'client_id: verifier' \"$AC_CLIENTS_FILE\"", definite: true},
}

// gRPC and GC.
const (
	GRPCUnavailable      Class = "grpc.unavailable"
	GRPCUnauthenticated  Class = "grpc.unauthenticated"
	GRPCPermissionDenied Class = "grpc.permission-denied"
	GRPCUnimplemented    Class = "grpc.unimplemented"
	GRPCError            Class = "grpc.error"
	GCNotServing         Class = "gc.not-serving"
	GCAuthNotEnforced    Class = "gc.auth-not-enforced"
	GCAuthWrongCode      Class = "gc.auth-wrong-code"
	GCMCMissing          Class = "gc.mc-missing"
	GCMCStale            Class = "gc.mc-stale"
	GCMCUnhealthy        Class = "gc.mc-unhealthy"
	GCNoCapacity         Class = "gc.no-capacity"
	GCMCUnexpected       Class = "gc.mc-unexpected"
)

var gcRows = map[Class]entry{
	GRPCUnavailable:      {cause: "the gRPC server at {target} is not reachable or not serving yet", local: grpcurlHealth, cluster: "kubectl -n dark-tower get pods -l app.kubernetes.io/name=global-controller"},
	GRPCUnauthenticated:  {cause: "GC rejected the verifier's token: GC validates against a different JWKS (AC_JWKS_URL) or the clocks differ", local: "curl -s \"$AC_JWKS_URL\"", cluster: "kubectl -n dark-tower logs deploy/global-controller --tail=50 | grep -i jwks"},
	GRPCPermissionDenied: {cause: "GC refused the verifier's token for this call: the verifier client lacks scope service.read.gc", local: "grep -n -A4 'client_id: verifier' \"$AC_CLIENTS_FILE\"", definite: true},
	GRPCUnimplemented:    {cause: "the server at {target} does not implement GlobalControllerService: the address points at another service", local: "grpcurl -plaintext {target} list", definite: true},
	GRPCError:            {cause: "the gRPC call failed", local: grpcurlHealth},
	GCNotServing:         {cause: "GC reports NOT_SERVING: it is shutting down or not ready", local: grpcurlHealth, cluster: "kubectl -n dark-tower describe pods -l app.kubernetes.io/name=global-controller"},
	GCAuthNotEnforced: {cause: "GC answered a registry call that carried no token: its auth interceptor is off, so anyone who reaches the port can read and change the registry",
		local: "grpcurl -plaintext {target} darktower.internal.v1.GlobalControllerService/ListMeetingControllers", definite: true},
	GCAuthWrongCode: {cause: "GC refused the anonymous call with the wrong code (want UNAUTHENTICATED)", local: "grpcurl -plaintext {target} darktower.internal.v1.GlobalControllerService/ListMeetingControllers", definite: true},
	GCMCMissing: {cause: "an expected meeting controller is not registered with GC: it is not running, cannot reach GC, or its token is refused",
		local: "grep -i regist <mc log>", cluster: "kubectl -n dark-tower logs -l app.kubernetes.io/name=meeting-controller --tail=30 | grep -i regist"},
	GCMCStale: {cause: "a meeting controller stopped heartbeating: the process is hung or stopped, or it lost its route to GC",
		local:   "grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" {target} darktower.internal.v1.GlobalControllerService/ListMeetingControllers",
		cluster: "kubectl -n dark-tower get pods -l app.kubernetes.io/name=meeting-controller && kubectl -n dark-tower logs -l app.kubernetes.io/name=meeting-controller --tail=30"},
	GCMCUnhealthy: {cause: "a meeting controller is registered but not HEALTHY (pending, degraded, draining or unhealthy)", local: "curl -s http://<mc health>/health/ready",
		cluster: "kubectl -n dark-tower get pods -l app.kubernetes.io/name=meeting-controller"},
	GCNoCapacity: {cause: "every live meeting controller is full (meetings or participants): new joins get 503 until meetings end or a controller is added",
		local:   "grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" {target} darktower.internal.v1.GlobalControllerService/ListMeetingControllers | jq '.controllers[].capacity'",
		cluster: "kubectl -n dark-tower scale deployment/meeting-controller --replicas=3  # or find who fills them: kubectl -n dark-tower logs deploy/global-controller | grep 'meeting assigned'"},
	GCMCUnexpected: {cause: "GC lists live meeting controllers nobody expects: another stack shares the database, or expected_count is out of date",
		local: "grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" {target} darktower.internal.v1.GlobalControllerService/ListMeetingControllers"},
}

// MC.
const (
	MCNotReady          Class = "mc.not-ready"
	MCHTTPStatus        Class = "mc.http-status"
	MCBadEndpoint       Class = "mc.bad-endpoint"
	MCPinMismatch       Class = "mc.pin-mismatch"
	MCQUICTimeout       Class = "mc.quic-timeout"
	MCWTRefused         Class = "mc.wt-refused"
	MCWTAcceptedUnknown Class = "mc.wt-accepted-unknown"
	MCWTNoAuth          Class = "mc.wt-no-auth"
	MCWTProtocol        Class = "mc.wt-protocol"
)

var mcRows = map[Class]entry{
	MCNotReady: {cause: "the MC reports not ready: Redis unreachable, not registered with GC yet, or draining", local: "curl -s {target}/health/ready",
		cluster: "kubectl -n dark-tower describe pods -l app.kubernetes.io/name=meeting-controller"},
	MCHTTPStatus: {cause: "the MC health endpoint answered an unexpected status: wrong port or path", local: "curl -si {target}/health/ready"},
	MCBadEndpoint: {cause: "the MC registered an unusable WebTransport endpoint or certificate hash", local: "check MC_WEBTRANSPORT_ADVERTISE_ADDRESS",
		cluster: "kubectl -n dark-tower get pods -l app.kubernetes.io/name=meeting-controller -o wide", definite: true},
	MCPinMismatch: {cause: "the certificate at the WebTransport endpoint is not the one the MC registered: a different process answers on that UDP port, or the MC restarted without re-registering",
		local: "ss -lunp | grep ':{port} '", cluster: "kubectl -n dark-tower get pods -l app.kubernetes.io/name=meeting-controller -o wide"},
	MCQUICTimeout: {cause: "no QUIC answer from {target}: UDP is blocked (NetworkPolicy, a Service port without protocol: UDP, a Kind port mapping not in upper-case UDP, or kubectl port-forward, which cannot carry UDP) or MC is not listening",
		local: "ss -lunp | grep ':{port} '", cluster: "kubectl -n dark-tower get svc meeting-controller -o yaml | grep -B2 -A2 UDP"},
	MCWTRefused:         {cause: "the MC answered the WebTransport CONNECT with an unexpected status (want 401 without a meeting token)", local: "grep -i webtransport <mc log>"},
	MCWTAcceptedUnknown: {cause: "the MC accepted a WebTransport session without a meeting token for a meeting that does not exist: anyone can fill it", local: "grep -i webtransport <mc log>", definite: true},
	MCWTNoAuth:          {cause: "the MC does not demand a meeting token before looking a meeting up: an older build, or its token check is off", local: "grep -i webtransport <mc log>", definite: true},
	MCWTProtocol:        {cause: "QUIC and TLS worked but the HTTP/3 WebTransport handshake failed (settings or Extended CONNECT missing)", local: "grep -i webtransport <mc log>"},
}

// Prometheus.
const (
	PrometheusNotReady        Class = "prometheus.not-ready"
	PrometheusHTTPStatus      Class = "prometheus.http-status"
	PrometheusJobMissing      Class = "prometheus.job-missing"
	PrometheusTooFewTargets   Class = "prometheus.too-few-targets"
	PrometheusNotScraped      Class = "prometheus.not-scraped"
	PrometheusTargetRefused   Class = "prometheus.target-refused"
	PrometheusTargetTimeout   Class = "prometheus.target-timeout"
	PrometheusTargetDNS       Class = "prometheus.target-dns"
	PrometheusTargetHTTP      Class = "prometheus.target-http"
	PrometheusTargetDown      Class = "prometheus.target-down"
	PrometheusAPIError        Class = "prometheus.api-error"
	PrometheusTSDBWriteFailed Class = "prometheus.tsdb-write-failed"
)

var prometheusRows = map[Class]entry{
	PrometheusNotReady:   {cause: "Prometheus is up but not ready (still replaying its WAL or loading config)", local: "curl -s {target}/-/ready", cluster: "kubectl -n dark-tower-observability logs deploy/prometheus --tail=30"},
	PrometheusHTTPStatus: {cause: "the Prometheus URL answered an unexpected status: wrong URL or a proxy in between", local: "curl -si {target}/-/ready"},
	PrometheusJobMissing: {cause: "Prometheus has no targets for an expected job: the scrape config lacks the job, or service discovery finds no pods (labels, namespace, ports)",
		local: "curl -s {target}/api/v1/targets | jq '.data.activeTargets[].labels.job' | sort | uniq -c", cluster: "kubectl -n dark-tower-observability get configmap prometheus -o yaml | grep job_name"},
	PrometheusTooFewTargets: {cause: "an expected job has fewer targets up than required: replicas missing or some targets down",
		local: "curl -s {target}/api/v1/targets | jq '.data.activeTargets[] | {job: .labels.job, health, lastError}'"},
	PrometheusNotScraped: {cause: "the targets exist but have not been scraped since the verifier started", local: "curl -s {target}/api/v1/targets | jq '.data.activeTargets[] | {job: .labels.job, lastScrape}'"},
	PrometheusTargetRefused: {cause: "Prometheus cannot connect to a target (connection refused): the exporter or service is down, or the scrape port is wrong",
		local: "curl -s {target}/api/v1/targets | jq '.data.activeTargets[] | select(.health != \"up\") | {scrapeUrl, lastError}'", cluster: "kubectl -n dark-tower get pods -o wide"},
	PrometheusTargetTimeout: {cause: "scrapes of a target time out: NetworkPolicy blocks Prometheus (ingress from dark-tower-observability), or the target is slow",
		local: "curl -s {target}/api/v1/targets | jq '.data.activeTargets[] | select(.health != \"up\") | {scrapeUrl, lastError}'", cluster: "kubectl -n dark-tower get networkpolicy"},
	PrometheusTargetDNS: {cause: "a scrape target's name does not resolve", local: "curl -s {target}/api/v1/targets | jq '.data.activeTargets[] | select(.health != \"up\") | {scrapeUrl, lastError}'"},
	PrometheusTargetHTTP: {cause: "a target answers the scrape with an HTTP error: wrong metrics path or the endpoint needs auth",
		local: "curl -s {target}/api/v1/targets | jq '.data.activeTargets[] | select(.health != \"up\") | {scrapeUrl, lastError}'"},
	PrometheusTargetDown: {cause: "a scrape target is down", local: "curl -s {target}/api/v1/targets | jq '.data.activeTargets[] | select(.health != \"up\") | {scrapeUrl, lastError}'"},
	PrometheusAPIError:   {cause: "the Prometheus API answered with an error", local: "curl -s {target}/api/v1/status/buildinfo"},
	PrometheusTSDBWriteFailed: {cause: "Prometheus failed to write its storage (WAL, checkpoint, compaction) since it started: the disk is full or read-only, and the samples of the failed scrape commits are lost",
		local:   "curl -s {target}/metrics | grep -E '^prometheus_tsdb_.*(failed|failures|corruptions)_total' ; df -h  # free space, then make down && make up (the counters restart at 0)",
		cluster: "kubectl -n dark-tower-observability exec deploy/prometheus -- df -h /prometheus", definite: true},
}

// Local files (mode local): data directories and logs on this machine.
const (
	LocalDiskFull   Class = "local.disk-full"
	LocalUnreadable Class = "local.unreadable"
)

var localRows = map[Class]entry{
	LocalDiskFull: {cause: "the filesystem holding {dir} is (nearly) full: the server writing there fails its writes (Postgres inserts, Prometheus scrape commits, Redis AOF) while it still answers",
		local: "df -h {dir} && du -xsh {dir}/* | sort -h | tail -5", definite: true},
	LocalUnreadable: {cause: "the verifier cannot read {path}: wrong path in its configuration, or it runs as another user",
		local: "ls -ld {path}", definite: true},
}

// Kubernetes (mode cluster). {ns} {workload} {pod} {container} {detail}
// come from the finding; {ns} defaults to the check's namespace.
const (
	K8sClientConfig         Class = "k8s.client-config"
	K8sUnauthorized         Class = "k8s.unauthorized"
	K8sForbidden            Class = "k8s.forbidden"
	K8sNotFound             Class = "k8s.not-found"
	K8sAPIBusy              Class = "k8s.api-busy"
	K8sAPIError             Class = "k8s.api-error"
	K8sWorkloadMissing      Class = "k8s.workload-missing"
	K8sWorkloadNotReady     Class = "k8s.workload-not-ready"
	K8sRolloutPending       Class = "k8s.rollout-pending"
	K8sCrashLoop            Class = "k8s.crashloop"
	K8sImagePull            Class = "k8s.image-pull"
	K8sConfigError          Class = "k8s.config-error"
	K8sUnschedulable        Class = "k8s.unschedulable"
	K8sMigrationMissing     Class = "k8s.migration-missing"
	K8sMigrationRunning     Class = "k8s.migration-running"
	K8sMigrationFailed      Class = "k8s.migration-failed"
	K8sNetpolTargetNotReady Class = "k8s.netpol-target-not-ready"
	K8sNetpolNotEnforced    Class = "k8s.netpol-not-enforced"
	K8sNetpolMissing        Class = "k8s.netpol-missing"
	K8sNetpolAllowFailed    Class = "k8s.netpol-allow-failed"
)

var k8sRows = map[Class]entry{
	K8sClientConfig: {cause: "the verifier has no way to reach the Kubernetes API: outside a pod there is no ServiceAccount (set kubernetes.kubeconfig), or the kubeconfig/context is wrong",
		local: "kubectl config get-contexts", cluster: "kubectl -n dark-tower get pod -l app.kubernetes.io/name=verifier -o yaml | grep -n -i -e serviceAccountName -e automount", definite: true},
	K8sUnauthorized: {cause: "the API server rejected the verifier's credentials (401): an expired kubeconfig token, or a ServiceAccount token from another cluster",
		local: "kubectl auth whoami", cluster: "kubectl -n dark-tower get serviceaccount verifier", definite: true},
	K8sForbidden: {cause: "RBAC does not let the verifier read what the check needs (403): the verifier-read Role or RoleBinding is missing in that namespace or lacks the resource",
		local:   "kubectl auth can-i --list -n {ns}",
		cluster: "kubectl auth can-i --list -n {ns} --as=system:serviceaccount:dark-tower:verifier  # and: kubectl -n {ns} get role,rolebinding verifier-read", definite: true},
	K8sNotFound: {cause: "the API has no such object: not deployed, deployed under another name or into another namespace",
		local: "kubectl -n {ns} get deploy,statefulset,daemonset,job"},
	K8sAPIBusy:  {cause: "the API server is overloaded or restarting (timeout, 429 or 503)", local: "kubectl get --raw /readyz?verbose"},
	K8sAPIError: {cause: "the Kubernetes API answered with an error", local: "kubectl get --raw /readyz?verbose"},
	K8sWorkloadMissing: {cause: "{workload} does not exist in namespace {ns}: the kustomization does not list it, it went to another namespace, or the deploy has not reached it yet",
		local: "kubectl -n {ns} get deploy,statefulset,daemonset"},
	K8sWorkloadNotReady: {cause: "{workload} has fewer ready replicas than it wants: pods still starting, or readiness probes failing (a dependency unreachable, a wrong probe path)",
		local: "kubectl -n {ns} describe {workload}"},
	K8sRolloutPending: {cause: "{workload} is not rolled out: its controller has not seen the newest spec (observedGeneration behind) or pods of the old revision remain",
		local: "kubectl -n {ns} rollout status {workload} --timeout=60s"},
	K8sCrashLoop: {cause: "container {container} of {pod} keeps exiting (CrashLoopBackOff): a missing environment variable or file, bad configuration, or a dependency it refuses to start without",
		local: "kubectl -n {ns} logs {pod} -c {container} --previous --tail=50"},
	K8sImagePull: {cause: "the node cannot get the image of {container} in {pod} ({detail}): the manifest's image name differs from what Skaffold built (SPEC section 9.1), the image was never loaded into Kind, or the registry is unreachable",
		local: "kubectl -n {ns} describe pod {pod} | tail -15  # then: make run (Skaffold builds, tags and loads the images)"},
	K8sConfigError: {cause: "the kubelet cannot build container {container} of {pod}: {detail} (a Secret, ConfigMap or key the manifest references does not exist)",
		local: "kubectl -n {ns} describe pod {pod} | tail -15 && kubectl -n {ns} get secrets,configmaps", definite: true},
	K8sUnschedulable: {cause: "no node accepts {pod}: {detail} (requests larger than the Kind node, use the Kind overlay; or a volume claim that cannot bind)",
		local: "kubectl -n {ns} describe pod {pod} | tail -15 && kubectl describe nodes | grep -A8 'Allocated resources'"},
	K8sMigrationMissing: {cause: "the migration Job {workload} does not exist: it was not applied, or it was deleted after finishing",
		local: "kubectl -n {ns} get jobs"},
	K8sMigrationRunning: {cause: "the migration Job {workload} has not completed yet: still running, waiting for Postgres, or retrying after failed attempts",
		local: "kubectl -n {ns} logs {workload} --tail=30 && kubectl -n {ns} describe {workload}"},
	K8sMigrationFailed: {cause: "the migration Job {workload} failed ({detail}): AC and GC run against a database without the schema they need",
		local: "kubectl -n {ns} logs {workload} --tail=50", definite: true},
	K8sNetpolTargetNotReady: {cause: "no pod matching {detail} is ready with its container {container}, so its port is not known to listen and a refused connection would prove nothing",
		local: "kubectl -n {ns} get pods -l {detail} -o wide && kubectl -n {ns} describe pods -l {detail} | tail -20"},
	K8sNetpolNotEnforced: {cause: "the verifier's pod connected to {target}, which NetworkPolicy denies to it: the CNI is not enforcing NetworkPolicy (Kind's kindnet fails open when it cannot), so every policy in the namespace is decoration",
		local: "kubectl -n kube-system get pods -o wide | grep -i -e kindnet -e calico -e cilium && kubectl -n {ns} get networkpolicy", definite: true},
	K8sNetpolMissing: {cause: "the verifier's pod connected to {target} and no NetworkPolicy in {ns} restricts ingress to {pod}: the default-deny or the component's policy is not applied",
		local: "kubectl -n {ns} get networkpolicy && kubectl -n {ns} get pod {pod} --show-labels", definite: true},
	K8sNetpolAllowFailed: {cause: "the verifier's pod cannot reach {target}, which NetworkPolicy allows: the pod network is down or the allow rule is missing on one side (the verifier's egress or the callee's ingress), so a blocked deny port would prove nothing",
		local: "kubectl -n {ns} get networkpolicy verifier {app} -o yaml | grep -B2 -A12 -e egress -e ingress"},
}

// An error no rule recognises.
const Unknown Class = "unknown"

var otherRows = map[Class]entry{
	Unknown: {cause: "an error the verifier has no rule for; the evidence has the details"},
}
