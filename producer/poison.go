package producer

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	amqp "github.com/rabbitmq/amqp091-go"
)

// chargePoison runs when a session ends, after its last confirmations were
// handled. When the broker closed the channel or the connection for a reason
// that points at a message (pointsAtMessage), or a write failed as the
// connection went (the broker may have closed the socket on a frame it
// refused, and amqp091-go then reports its own write error instead of the
// broker's), the producer goes into probe mode: it publishes one message at
// a time until the next ack. A loss of that kind while a single message is
// in flight in probe mode charges that message one strike; strikes add up while nothing is acked in between (an
// ack ends probe mode). At the poison budget the message is dropped with
// reason Invalid, so it cannot kill channel after channel (or connection
// after connection) while the messages behind it wait. Losses that do not
// point at a message (a reset socket, a missed heartbeat, a forced close, a
// missing exchange) charge nothing: a healthy message is never dropped for
// them, nor for being slow to confirm next to a poison one.
func (p *Producer) chargePoison(st *pubState, e *amqp.Error, writeFailed uint64) {
	probing := st.probe
	if pointsAtMessage(e) || writeFailed != 0 {
		st.probe = true
	}
	if !probing {
		if st.probe {
			p.log.Info("producer: the channel was lost in a way a message can cause; publishing one at a time until the next ack", "error", e, "write_failed", writeFailed != 0)
		}
		return
	}
	// In probe mode one message is on the wire at a time. It is the suspect
	// when the loss points at a message, or when its own write failed as the
	// connection went (the broker closing the socket on a frame it refuses
	// can make the rest of that write fail first, hiding the broker's error).
	var env *envelope
	var s *flightSlot
	switch {
	case pointsAtMessage(e) && st.fl.len() == 1:
		if s = st.fl.first(); s != nil {
			env = &s.env
		}
	case writeFailed != 0 && st.fl.len() == 0 && st.resendAt < len(st.resend) && st.resend[st.resendAt].seq == writeFailed:
		env = &st.resend[st.resendAt]
	}
	if env == nil {
		return
	}
	if env.seq == st.poisonSeq {
		st.poisonHits++
	} else {
		st.poisonSeq, st.poisonHits = env.seq, 1
	}
	code, reason := 0, "its write failed as the connection closed"
	if e != nil {
		code, reason = e.Code, e.Reason
	}
	if st.poisonHits < p.cfg.poisonBudget {
		p.log.Warn("producer: the channel was lost with this message alone in flight",
			"message_id", p.idOf(env), "strike", st.poisonHits, "budget", p.cfg.poisonBudget, "code", code, "reason", reason)
		return
	}
	p.log.Error("producer: poison message dropped with reason invalid",
		"message_id", p.idOf(env), "strikes", st.poisonHits, "code", code, "reason", reason)
	st.poisonSeq, st.poisonHits = 0, 0
	p.drop(env, Invalid)
	if s != nil {
		s.done = true
		st.fl.advance()
		return
	}
	st.resend[st.resendAt] = envelope{}
	st.resendAt++
}

// pointsAtMessage reports whether the broker closed a producer's channel or
// connection for a reason a message can cause: 406 PRECONDITION_FAILED on the
// channel (for example a user_id that is not the connection's user), 311
// content too large, or a connection closed by the broker with a frame,
// syntax or command error (501, 502, 503, 505, 540). A closed channel of a
// producer always comes from its publishes, but 403 and 404 name the
// destination or the permissions, never one message.
func pointsAtMessage(e *amqp.Error) bool {
	if e == nil {
		return false
	}
	switch e.Code {
	case amqp.PreconditionFailed:
		return brokerMaxSize(e) == 0 // over the max size is reported as TooLarge
	case amqp.ContentTooLarge:
		return true
	case amqp.FrameError, amqp.SyntaxError, amqp.CommandInvalid, amqp.UnexpectedFrame, amqp.NotImplemented:
		// amqp091-go closes the connection with 501 itself after a failed
		// write: that local error (Server false) is a socket problem, or an
		// encoding error that publish already dropped.
		return e.Server
	}
	return false
}

// encodingError reports whether a failed publish failed before reaching the
// socket: not the channel or connection being closed, nor an I/O error.
func encodingError(err error) bool {
	var ae *amqp.Error
	var ne net.Error
	switch {
	case err == nil, errors.As(err, &ae), errors.As(err, &ne):
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.ErrClosedPipe),
		errors.Is(err, io.ErrShortWrite), errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return false
	}
	return true
}

// idOf names a message in logs: its ID, or the one it will be given.
func (p *Producer) idOf(env *envelope) string {
	if env.msg.MessageID != "" {
		return env.msg.MessageID
	}
	return p.newID(env.seq)
}
