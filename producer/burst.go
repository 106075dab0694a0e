package producer

// Write coalescing. amqp091-go flushes its buffered writer after every
// publish, one write to the socket per message. The publisher corks the
// client's connection (lavinmq.Conn.Cork) around one burst: the messages it
// takes in one go, at most maxBurst, never more than the confirm window has
// room for. The burst then reaches the socket in one write (or a few, past
// lavinmq.CorkMaxBytes), made when the burst ends: before the publisher
// looks at confirmations, waits for a full window, for the buffer or for a
// blocked connection to clear, and before it leaves the session. Other
// writers of the connection (consumers' acks, heartbeats) wait in the cork at
// most until the end of the burst.
//
// A FireAndForget message is settled as written (Confirmed, HookWritten)
// only once the write of its burst succeeded. When it fails, the burst's
// messages are unconfirmed: they go back in front of the re-sends, in order,
// and are published again on the next connection, like a message whose
// publish failed.

// endBurst ends the cork of the burst whose first flight tag was mark: the
// real write runs with stMu released (a blocked broker holds it up). On
// success the burst's FireAndForget messages are settled. When the write
// fails the burst's messages are put back and *writeFailed names the first of
// them; the session must end (the connection is closed). orphaned: Close took
// the state over meanwhile, and the caller must return without touching st.
func (p *Producer) endBurst(uncork func() error, st *pubState, mark uint64, writeFailed *uint64) (err error, orphaned bool) {
	p.stMu.Unlock()
	err = uncork()
	p.stMu.Lock()
	if p.orphaned {
		return err, true
	}
	if err != nil {
		st.flightBack(mark)
		st.burstBack()
		if st.resendAt < len(st.resend) {
			*writeFailed = st.resend[st.resendAt].seq
		}
		return err, false
	}
	if len(st.burst) > 0 {
		st.acked = true
		for i := range st.burst {
			p.confirm(&st.burst[i])
		}
		clear(st.burst)
		st.burst = st.burst[:0]
	}
	return nil, false
}

// abandonBurst ends the cork of a burst after Close took the state over.
func (p *Producer) abandonBurst(uncork func() error) {
	p.stMu.Unlock()
	_ = uncork()
	p.stMu.Lock()
}

// flightBack takes the messages published since flight tag mark (a burst
// whose write failed) out of the flight, to be published again first.
func (st *pubState) flightBack(mark uint64) {
	if st.fl.next <= mark {
		return
	}
	back := make([]envelope, st.fl.next-mark)
	for i := len(back) - 1; i >= 0; i-- {
		back[i] = st.fl.unadd()
		delete(st.inFlightIDs, back[i].msg.MessageID)
	}
	st.resend = append(back, st.resend[st.resendAt:]...)
	st.resendAt = 0
}

// burstBack puts the FireAndForget messages of an unwritten burst in front of
// the re-sends, in order.
func (st *pubState) burstBack() {
	if len(st.burst) == 0 {
		return
	}
	st.resend = append(append([]envelope(nil), st.burst...), st.resend[st.resendAt:]...)
	st.resendAt = 0
	clear(st.burst)
	st.burst = st.burst[:0]
}
