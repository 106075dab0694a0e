package consumer

// States of a tracked delivery tag.
const (
	tagPending uint8 = iota // delivered, not settled yet
	tagAck                  // settled with Ack, the ack not written yet
	tagDone                 // written (a nack, or an ack on its own): nothing left to send
)

type tagSlot struct {
	tag uint64
	st  uint8
}

// tagRing is the contiguous-prefix tracker of one channel: the delivery tags
// taken from it and not yet flushed, in the order the broker sent them
// (increasing), each with its state. A multiple ack of tag t acknowledges
// every unacknowledged delivery of the channel up to t, so it is safe only
// when no tag <= t is still pending: takePrefix finds the leading run of
// settled slots and the highest Ack in it. Settled acks behind a pending slot
// (handlers finishing out of order) wait for it, or go one by one (takeRest).
//
// The ring holds at most the deliveries the broker counts as unacknowledged
// (the prefetch), plus written slots behind a pending one, which compact
// drops once they outnumber the live ones. It grows by doubling, from 64
// slots, so an idle consumer with a large prefetch stays small. Not safe for
// concurrent use: the acker's mutex guards it.
type tagRing struct {
	buf  []tagSlot // len is 0 or a power of two
	head int       // index of the oldest slot
	n    int       // slots in use
	acks int       // slots in state tagAck
	live int       // slots not tagDone
}

func (r *tagRing) at(i int) *tagSlot { return &r.buf[(r.head+i)&(len(r.buf)-1)] }

// add tracks a newly delivered tag as pending. Tags must increase; a tag at or
// below the last one is refused (false) and stays untracked.
func (r *tagRing) add(tag uint64) bool {
	if r.n > 0 && tag <= r.at(r.n-1).tag {
		return false
	}
	if r.n == len(r.buf) {
		r.grow()
	}
	*r.at(r.n) = tagSlot{tag: tag, st: tagPending}
	r.n++
	r.live++
	return true
}

func (r *tagRing) grow() {
	size := max(64, 2*len(r.buf))
	buf := make([]tagSlot, size)
	for i := range r.n {
		buf[i] = *r.at(i)
	}
	r.buf, r.head = buf, 0
}

// find returns the position (0 = oldest) of tag, or -1 when it is not tracked.
// Tags of one channel are consecutive, so the first guess almost always hits;
// gaps (and compaction) fall back to a binary search.
func (r *tagRing) find(tag uint64) int {
	if r.n == 0 {
		return -1
	}
	first := r.at(0).tag
	if tag < first {
		return -1
	}
	if d := tag - first; d < uint64(r.n) && r.at(int(d)).tag == tag {
		return int(d)
	}
	lo, hi := 0, r.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.at(m).tag < tag {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < r.n && r.at(lo).tag == tag {
		return lo
	}
	return -1
}

// settle moves a pending tag to st (tagAck or tagDone). It reports false when
// the tag is not tracked or was settled already.
func (r *tagRing) settle(tag uint64, st uint8) bool {
	i := r.find(tag)
	if i < 0 || r.at(i).st != tagPending {
		return false
	}
	r.at(i).st = st
	switch st {
	case tagAck:
		r.acks++
	case tagDone:
		r.live--
		r.dropDone()
	}
	return true
}

// takePrefix removes the leading run of settled slots whose tags are below
// limit and returns the highest Ack tag in it with the number of Acks it
// covers (n == 0: nothing to send). One ack of last with multiple=true then
// acknowledges exactly those n deliveries: every other delivery of the
// channel up to last was written already.
func (r *tagRing) takePrefix(limit uint64) (last uint64, n int) {
	for r.n > 0 {
		s := r.at(0)
		if s.st == tagPending || s.tag >= limit {
			break
		}
		if s.st == tagAck {
			last, n = s.tag, n+1
			r.acks--
			r.live--
		}
		r.head = (r.head + 1) & (len(r.buf) - 1)
		r.n--
	}
	return last, n
}

// prefixAcks counts the Acks in the leading run of settled slots, stopping
// once it has counted limit.
func (r *tagRing) prefixAcks(limit int) int {
	n := 0
	for i := 0; i < r.n && n < limit; i++ {
		switch r.at(i).st {
		case tagPending:
			return n
		case tagAck:
			n++
		}
	}
	return n
}

// takeRest marks every remaining Ack as written and appends its tag to dst:
// they sit behind a pending delivery, so each must go on its own.
func (r *tagRing) takeRest(dst []uint64) []uint64 {
	if r.acks == 0 {
		return dst
	}
	for i := range r.n {
		if s := r.at(i); s.st == tagAck {
			dst = append(dst, s.tag)
			s.st = tagDone
		}
	}
	r.live -= r.acks
	r.acks = 0
	r.dropDone()
	return dst
}

// dropDone pops written slots off the front and compacts the ring when
// written slots behind a pending one outnumber the live ones, so a delivery
// whose handler never returns cannot make the ring grow without bound.
func (r *tagRing) dropDone() {
	for r.n > 0 && r.at(0).st == tagDone {
		r.head = (r.head + 1) & (len(r.buf) - 1)
		r.n--
	}
	if r.n-r.live <= r.live+32 {
		return
	}
	j := 0
	for i := range r.n {
		if s := *r.at(i); s.st != tagDone {
			*r.at(j) = s
			j++
		}
	}
	r.n = j
}

// len returns the number of tracked slots (for tests).
func (r *tagRing) len() int { return r.n }
