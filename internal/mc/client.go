package mc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/webtransport-go"

	"github.com/darktower/devstack/internal/wtclient"
)

// BindingToken is base64url (no padding) of HMAC-SHA256(secret, meetingID|nonce).
func BindingToken(secret []byte, meetingID, nonce string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(meetingID + "|" + nonce))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// VerifyBindingToken checks a token from a Welcome in constant time.
func VerifyBindingToken(secret []byte, meetingID, nonce, token string) bool {
	want := BindingToken(secret, meetingID, nonce)
	return hmac.Equal([]byte(want), []byte(token))
}

// RefusedError is MC answering the WebTransport CONNECT with a non-2xx status
// (404 for a meeting it does not host) instead of upgrading.
type RefusedError struct {
	URL        string
	StatusCode int
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("WebTransport %s: refused with HTTP %d", e.URL, e.StatusCode)
}

// ClientSession is an open WebTransport session to MC and its welcome.
type ClientSession struct {
	Welcome *Welcome
	sess    *webtransport.Session
	tr      *webtransport.Transport
}

// Done is closed when the session ends (for example when MC drains).
func (c *ClientSession) Done() <-chan struct{} { return c.sess.Context().Done() }

// Close ends the session and its QUIC connection.
func (c *ClientSession) Close() error {
	err := c.sess.CloseWithError(0, "")
	_ = c.tr.Close()
	return err
}

// DialWebTransport opens a session to url (https://host:port/meetings/{id})
// with the server certificate pinned to certSHA256Hex (hex SHA-256 of the DER
// certificate, as GC advertises it), reads the welcome and closes the session.
func DialWebTransport(ctx context.Context, url, certSHA256Hex string) (*Welcome, error) {
	cs, err := OpenWebTransport(ctx, url, certSHA256Hex)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	return cs.Welcome, nil
}

// OpenWebTransport is DialWebTransport that leaves the session open.
func OpenWebTransport(ctx context.Context, url, certSHA256Hex string) (*ClientSession, error) {
	pin, err := wtclient.ParsePin(certSHA256Hex)
	if err != nil {
		return nil, fmt.Errorf("certificate pin %q: %w", certSHA256Hex, err)
	}
	tr := wtclient.New(pin, 15*time.Second)
	rsp, sess, err := tr.Dial(ctx, url, nil)
	if err != nil {
		_ = tr.Close()
		if rsp != nil && (rsp.StatusCode < 200 || rsp.StatusCode > 299) {
			return nil, &RefusedError{URL: url, StatusCode: rsp.StatusCode}
		}
		return nil, fmt.Errorf("WebTransport %s: %w", url, err)
	}
	cs := &ClientSession{sess: sess, tr: tr.Transport}
	w, err := readWelcome(ctx, sess)
	if err != nil {
		_ = cs.Close()
		return nil, fmt.Errorf("WebTransport %s: welcome: %w", url, err)
	}
	cs.Welcome = w
	return cs, nil
}

func readWelcome(ctx context.Context, sess *webtransport.Session) (*Welcome, error) {
	str, err := sess.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = str.SetReadDeadline(dl)
	}
	b, err := io.ReadAll(io.LimitReader(str, 64<<10))
	if err != nil {
		return nil, err
	}
	var w Welcome
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("decoding %q: %w", b, err)
	}
	return &w, nil
}
