package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/logging"
)

// assignTimeout bounds one AssignMeeting call, so an unreachable MC costs
// the join a few seconds before the next candidate is tried.
const assignTimeout = 3 * time.Second

// errNoController means no healthy controller took the meeting (HTTP 503).
var errNoController = errors.New("no healthy meeting controller available")

// JoinResult is what a client needs to reach its meeting's controller.
type JoinResult struct {
	MeetingID              string `json:"meeting_id"`
	ControllerID           string `json:"controller_id"`
	Region                 string `json:"region"`
	WebTransportEndpoint   string `json:"webtransport_endpoint"`
	WebTransportURL        string `json:"webtransport_url"`
	WebTransportCertSHA256 string `json:"webtransport_cert_sha256"`
	// ParticipantID and MeetingToken: the token AC signed for this join,
	// bound to meeting, participant and controller; MC accepts a WebTransport
	// session only with it (WebTransportURL carries it as ?token=, since a
	// browser cannot set headers on a WebTransport CONNECT).
	ParticipantID string `json:"participant_id"`
	MeetingToken  string `json:"meeting_token"`
	// GRPCEndpoint is GC's internal address of the controller: never sent to
	// callers, who only need WebTransport.
	GRPCEndpoint string `json:"-"`
	reused       bool
}

// withMeetingToken fills in a new participant's meeting token.
func (r *JoinResult) withMeetingToken(participant, token string) {
	r.ParticipantID, r.MeetingToken = participant, token
	r.WebTransportURL += "?token=" + url.QueryEscape(token)
}

// joiner places meetings on controllers. It keeps one gRPC client
// connection per controller endpoint; each call carries GC's token for that
// controller alone (aud = its id), so one MC cannot replay it at another.
type joiner struct {
	store     *Store
	tokens    func(controllerID string) credentials.PerRPCCredentials
	gcID      string
	threshold time.Duration
	log       *slog.Logger

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	creds map[string]credentials.PerRPCCredentials // by controller id
}

// credsFor returns the cached per-call credentials for one controller.
func (j *joiner) credsFor(id string) credentials.PerRPCCredentials {
	j.mu.Lock()
	defer j.mu.Unlock()
	c, ok := j.creds[id]
	if !ok {
		c = j.tokens(id)
		j.creds[id] = c
	}
	return c
}

func (j *joiner) client(endpoint string) (internalv1.MeetingControllerServiceClient, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if cc, ok := j.conns[endpoint]; ok {
		return internalv1.NewMeetingControllerServiceClient(cc), nil
	}
	target, err := dialTarget(endpoint)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("meeting controller %s: %w", endpoint, err)
	}
	j.conns[endpoint] = cc
	return internalv1.NewMeetingControllerServiceClient(cc), nil
}

// dialTarget turns an advertised http://host:port into host:port.
func dialTarget(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("meeting controller endpoint %q is not a URL with a host", endpoint)
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// prune closes the connections to endpoints that no live controller
// advertises any more (deregistered, stale, re-registered elsewhere): each
// held goroutines and a socket forever. It drops the token sources of
// controllers that left too. It returns how many connections it closed.
func (j *joiner) prune(live, liveIDs map[string]bool) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	for id := range j.creds {
		if !liveIDs[id] {
			delete(j.creds, id)
		}
	}
	n := 0
	for ep, cc := range j.conns {
		if !live[ep] {
			_ = cc.Close()
			delete(j.conns, ep)
			n++
		}
	}
	return n
}

// open is how many controller connections the joiner holds.
func (j *joiner) open() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.conns)
}

func (j *joiner) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for ep, cc := range j.conns {
		_ = cc.Close()
		delete(j.conns, ep)
	}
}

// join returns the meeting's controller: its open assignment when that
// controller is healthy and fresh, otherwise the least-loaded healthy fresh
// controller in region that accepts it, trying the next on refusal or error.
//
// The owner is decided in Postgres: the open assignment row is the claim (one
// per meeting, a unique index), inserted in a transaction that commits only
// once the controller accepted (ClaimAssignment); if it refuses or cannot be
// reached, the claim is rolled back and the next candidate claimed. Two GCs
// placing the same new meeting at once thus agree on one controller, and
// Redis with them, and neither answers before the controller took it.
func (j *joiner) join(ctx context.Context, meetingID, region string) (JoinResult, error) {
	open, err := j.store.OpenAssignment(ctx, meetingID, j.threshold)
	if err != nil {
		return JoinResult{}, fmt.Errorf("reading assignment: %w", err)
	}
	var previous string // the controller Redis may still name as the owner
	if open != nil {
		if open.Fresh {
			// Meetings end on the MC (idle TTL, grace after the last
			// participant), so confirm it there; for a live meeting that is
			// a no-op, for an ended one it starts again on the same MC.
			if ok, _ := j.assign(ctx, meetingID, open.Controller, ""); ok {
				r := result(meetingID, open.Controller)
				r.reused = true
				return r, nil
			}
		}
		j.log.Info("ending assignment to a controller that is no longer healthy or refused the meeting",
			"meeting_id", meetingID, "controller_id", open.Controller.ID, "health", open.Controller.Health.String())
		if err := j.store.EndAssignment(ctx, meetingID, open.Controller.ID); err != nil {
			return JoinResult{}, fmt.Errorf("ending stale assignment: %w", err)
		}
		previous = open.Controller.ID
	} else if previous, err = j.store.LastController(ctx, meetingID); err != nil {
		return JoinResult{}, fmt.Errorf("reading the last assignment: %w", err)
	}
	cands, err := j.store.Candidates(ctx, region, j.threshold)
	if err != nil {
		return JoinResult{}, fmt.Errorf("listing candidates: %w", err)
	}
	var refused, failed int
	for _, c := range cands {
		inserted, ok, why, err := j.store.ClaimAssignment(ctx, meetingID, c, j.gcID, func() (bool, string) {
			return j.assign(ctx, meetingID, c, previous)
		})
		if err != nil {
			return JoinResult{}, err
		}
		if !inserted {
			// Another GC replica's claim was confirmed first; answer with it.
			if open, err := j.store.OpenAssignment(ctx, meetingID, j.threshold); err == nil && open != nil {
				r := result(meetingID, open.Controller)
				r.reused = true
				return r, nil
			}
			return JoinResult{}, fmt.Errorf("meeting %s was assigned concurrently and the assignment could not be read", meetingID)
		}
		if ok {
			j.log.Info("meeting assigned", "meeting_id", meetingID, "controller_id", c.ID, "region", c.Region)
			return result(meetingID, c), nil
		}
		// The claim was rolled back; the next candidate is claimed.
		// The caller learns counts; endpoints and dial errors stay in the log.
		if why == "" {
			failed++
		} else {
			refused++
		}
	}
	if len(cands) == 0 {
		return JoinResult{}, fmt.Errorf("%w in region %q", errNoController, region)
	}
	return JoinResult{}, fmt.Errorf("%w in region %q: %d refused the meeting, %d could not be reached",
		errNoController, region, refused, failed)
}

// assign asks one controller to host the meeting. A refusal returns the
// controller's reason; a failure to ask returns "" (the log has the error).
func (j *joiner) assign(ctx context.Context, meetingID string, c Controller, previous string) (bool, string) {
	cl, err := j.client(c.GRPCEndpoint)
	if err != nil {
		j.log.Warn("AssignMeeting not sent", "meeting_id", meetingID, "controller_id", c.ID, "target", c.GRPCEndpoint, "error", err)
		return false, ""
	}
	ctx, cancel := context.WithTimeout(ctx, assignTimeout)
	defer cancel()
	if previous == c.ID {
		previous = "" // its own meeting: nothing to take over
	}
	resp, err := cl.AssignMeeting(ctx, &internalv1.AssignMeetingRequest{MeetingId: meetingID, RequestingGcId: j.gcID, PreviousControllerId: previous},
		grpc.PerRPCCredentials(j.credsFor(c.ID)))
	if err != nil {
		j.log.Warn("AssignMeeting failed", "meeting_id", meetingID, "controller_id", c.ID, "target", c.GRPCEndpoint, "error", err)
		return false, ""
	}
	if !resp.GetAccepted() {
		j.log.Info("AssignMeeting rejected", "meeting_id", meetingID, "controller_id", c.ID, "reason", logging.Bound(resp.GetRejectionReason()))
		return false, "rejected"
	}
	return true, ""
}

func result(meetingID string, c Controller) JoinResult {
	return JoinResult{
		MeetingID: meetingID, ControllerID: c.ID, Region: c.Region,
		WebTransportEndpoint:   c.WebTransportEndpoint,
		WebTransportURL:        strings.TrimSuffix(c.WebTransportEndpoint, "/") + "/meetings/" + meetingID,
		WebTransportCertSHA256: c.CertSHA256,
		GRPCEndpoint:           c.GRPCEndpoint,
	}
}
