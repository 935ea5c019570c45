package mc

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/darktower/devstack/internal/auth"
)

// MeetingPathPrefix is where WebTransport sessions are opened:
// https://<advertise>/meetings/{meeting_id}.
const MeetingPathPrefix = "/meetings/"

// Welcome is the first message of every session. The server opens a
// unidirectional stream right after accepting the session, writes this as one
// JSON object followed by a newline, and closes the stream. BindingToken is
// base64url (no padding) of HMAC-SHA256(MC_BINDING_TOKEN_SECRET,
// meeting_id + "|" + session_nonce); it binds later requests to this
// meeting and session without MC keeping per-session secrets.
type Welcome struct {
	MeetingID    string `json:"meeting_id"`
	ControllerID string `json:"controller_id"`
	SessionNonce string `json:"session_nonce"`
	BindingToken string `json:"binding_token"`
}

// closeCodeDraining is the session close code MC sends when it shuts down.
const closeCodeDraining webtransport.SessionErrorCode = 1

func (s *Server) newWebTransportServer(v *auth.Validator) *webtransport.Server {
	h3 := &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{
			Certificates: []tls.Certificate{s.cert.cert},
			MinVersion:   tls.VersionTLS13,
		}),
		QUICConfig: &quic.Config{
			EnableDatagrams:                  true,
			EnableStreamResetPartialDelivery: true,
			KeepAlivePeriod:                  15 * time.Second,
			MaxIdleTimeout:                   60 * time.Second,
		},
		Logger: s.log,
	}
	wt := &webtransport.Server{
		H3: h3,
		// Browser clients are served from another origin (the web app), so the
		// same-origin default would refuse them; a session is only useful for a
		// meeting GC assigned here, which the handler checks.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	h3.Handler = s.webTransportHandler(wt, v)
	return wt
}

// webTransportHandler upgrades only with a valid meeting token for this
// meeting and this MC, and only for a meeting assigned to this MC in Redis;
// anything else is answered with a plain HTTP status and no upgrade. The
// token is checked before anything is counted or looked up, so anonymous
// sessions cost no capacity.
func (s *Server) webTransportHandler(wt *webtransport.Server, v *auth.Validator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(code int, msg string, args ...any) {
			s.m.sessions.WithLabelValues(statusRefused).Inc()
			s.log.Info("WebTransport session refused", append([]any{"path", r.URL.Path, "status", code, "reason", msg, "remote", r.RemoteAddr}, args...)...)
			http.Error(w, msg, code)
		}
		mid, ok := strings.CutPrefix(r.URL.Path, MeetingPathPrefix)
		if !ok || !meetingIDPattern.MatchString(mid) {
			refuse(http.StatusNotFound, "not found")
			return
		}
		if r.Method != http.MethodConnect {
			refuse(http.StatusBadRequest, "expected a WebTransport CONNECT request")
			return
		}
		if why := s.checkMeetingToken(r, v, mid); why != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="meeting-controller", error="invalid_token"`)
			refuse(http.StatusUnauthorized, why, "meeting_id", mid)
			return
		}
		if s.draining.Load() {
			refuse(http.StatusServiceUnavailable, "meeting controller is draining")
			return
		}
		if s.sessions.count() >= s.cfg.MaxParticipants {
			refuse(http.StatusServiceUnavailable, "meeting controller is full (MC_MAX_PARTICIPANTS)", "meeting_id", mid)
			return
		}
		ok, err := s.store.hosts(r.Context(), mid)
		if err != nil {
			refuse(http.StatusServiceUnavailable, "meeting state unavailable", "meeting_id", mid, "error", err)
			return
		}
		if !ok {
			refuse(http.StatusNotFound, "meeting not assigned to this controller", "meeting_id", mid)
			return
		}
		sess, err := wt.Upgrade(w, r)
		if err != nil {
			s.m.sessions.WithLabelValues(statusRefused).Inc()
			s.log.Warn("WebTransport upgrade failed", "meeting_id", mid, "remote", r.RemoteAddr, "error", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.m.sessions.WithLabelValues(statusAccepted).Inc()
		s.participantJoined(mid)
		s.sessions.add(sess, func() {
			defer s.participantLeft(mid)
			s.hostSession(sess, mid)
		})
	})
}

// checkMeetingToken returns why the request's ?token= does not open a
// session for meetingID here, or "".
func (s *Server) checkMeetingToken(r *http.Request, v *auth.Validator, meetingID string) string {
	tok := r.URL.Query().Get("token")
	if tok == "" {
		return "meeting token required: join the meeting through GC and use the webtransport_url it answers"
	}
	if len(tok) > 4096 {
		return "meeting token too long"
	}
	c, err := v.Validate(r.Context(), tok)
	switch {
	case err != nil:
		return "invalid meeting token"
	case !c.HasScope(auth.ScopeMeetingSession):
		return "not a meeting token"
	case c.MeetingID != meetingID:
		return "meeting token is for another meeting"
	case !slices.Contains(c.Audience, s.cfg.ID):
		return "meeting token is for another meeting controller"
	}
	return ""
}

// participantJoined holds the meeting in Redis while anyone is in it.
func (s *Server) participantJoined(meetingID string) {
	s.partMu.Lock()
	s.participants[meetingID]++
	first := s.participants[meetingID] == 1
	s.partMu.Unlock()
	if first {
		ctx, cancel := context.WithTimeout(context.Background(), redisCheckTimeout)
		defer cancel()
		if err := s.store.hold(ctx, meetingID); err != nil {
			s.log.Warn("holding the meeting in Redis failed; it may end while in use", "meeting_id", meetingID, "error", err)
		}
	}
}

// participantLeft starts the meeting's grace when its last participant left.
func (s *Server) participantLeft(meetingID string) {
	s.partMu.Lock()
	s.participants[meetingID]--
	last := s.participants[meetingID] <= 0
	if last {
		delete(s.participants, meetingID)
	}
	s.partMu.Unlock()
	if last {
		ctx, cancel := context.WithTimeout(context.Background(), redisCheckTimeout)
		defer cancel()
		if err := s.store.release(ctx, meetingID, s.cfg.MeetingGrace); err != nil {
			s.log.Warn("starting the meeting's grace in Redis failed", "meeting_id", meetingID, "error", err)
		}
		s.log.Info("last participant left; the meeting ends after the grace unless someone joins", "meeting_id", meetingID, "grace", s.cfg.MeetingGrace.String())
	}
}

// hostSession sends the welcome and then holds the session until the client
// or the drain closes it.
func (s *Server) hostSession(sess *webtransport.Session, meetingID string) {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	w := Welcome{
		MeetingID:    meetingID,
		ControllerID: s.cfg.ID,
		SessionNonce: base64.RawURLEncoding.EncodeToString(nonce),
	}
	w.BindingToken = BindingToken([]byte(s.cfg.BindingSecret.Reveal()), meetingID, w.SessionNonce)
	log := s.log.With("meeting_id", meetingID, "remote", sess.RemoteAddr().String())
	log.Info("WebTransport session accepted")

	ctx, cancel := context.WithTimeout(sess.Context(), 10*time.Second)
	str, err := sess.OpenUniStreamSync(ctx)
	cancel()
	if err != nil {
		log.Warn("opening the welcome stream failed", "error", err)
		_ = sess.CloseWithError(0, "welcome failed")
		return
	}
	b, _ := json.Marshal(w)
	_ = str.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := str.Write(append(b, '\n')); err != nil {
		log.Warn("writing the welcome failed", "error", err)
		_ = sess.CloseWithError(0, "welcome failed")
		return
	}
	_ = str.Close()
	<-sess.Context().Done()
	log.Info("WebTransport session ended")
}

// sessionSet tracks open sessions so heartbeats can count them and the drain
// can close them.
type sessionSet struct {
	mu     sync.Mutex
	m      map[*webtransport.Session]struct{}
	wg     sync.WaitGroup
	onSize func(int)
}

func (ss *sessionSet) add(sess *webtransport.Session, run func()) {
	ss.mu.Lock()
	ss.m[sess] = struct{}{}
	ss.onSize(len(ss.m))
	ss.mu.Unlock()
	ss.wg.Go(func() {
		defer func() {
			ss.mu.Lock()
			delete(ss.m, sess)
			ss.onSize(len(ss.m))
			ss.mu.Unlock()
		}()
		run()
	})
}

func (ss *sessionSet) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}

// closeAll ends every session with the draining code and waits (up to
// timeout) for their goroutines.
func (ss *sessionSet) closeAll(timeout time.Duration) {
	ss.mu.Lock()
	for sess := range ss.m {
		_ = sess.CloseWithError(closeCodeDraining, "meeting controller draining")
	}
	ss.mu.Unlock()
	done := make(chan struct{})
	go func() { ss.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}
