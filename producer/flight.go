package producer

// flight holds the messages published on the current channel and not yet
// settled, indexed by delivery tag (tags of one channel count up from 1).
// At most cap messages are in flight, so a tag's slot is tag % cap.
type flight struct {
	buf  []flightSlot
	head uint64 // oldest unsettled tag
	next uint64 // tag of the next publish
}

type flightSlot struct {
	env  envelope
	done bool
}

func newFlight(n int) flight { return flight{buf: make([]flightSlot, n), head: 1, next: 1} }

func (f *flight) reset()     { f.head, f.next = 1, 1 }
func (f *flight) len() int   { return int(f.next - f.head) }
func (f *flight) full() bool { return f.len() >= len(f.buf) }

func (f *flight) add(env envelope) {
	f.buf[f.next%uint64(len(f.buf))] = flightSlot{env: env}
	f.next++
}

// unadd takes back the last add (its publish failed).
func (f *flight) unadd() envelope {
	f.next--
	s := &f.buf[f.next%uint64(len(f.buf))]
	env := s.env
	*s = flightSlot{}
	return env
}

func (f *flight) get(tag uint64) *flightSlot {
	if tag < f.head || tag >= f.next {
		return nil
	}
	return &f.buf[tag%uint64(len(f.buf))]
}

// advance forgets the settled messages at the head.
func (f *flight) advance() {
	for f.head < f.next {
		s := &f.buf[f.head%uint64(len(f.buf))]
		if !s.done {
			return
		}
		*s = flightSlot{}
		f.head++
	}
}

// takeUnsettled empties the flight, appending the unsettled messages in tag
// (publish) order to out.
func (f *flight) takeUnsettled(out []envelope) []envelope {
	for t := f.head; t < f.next; t++ {
		s := &f.buf[t%uint64(len(f.buf))]
		if !s.done {
			out = append(out, s.env)
		}
		*s = flightSlot{}
	}
	f.reset()
	return out
}

// first returns the oldest unsettled message, or nil.
func (f *flight) first() *flightSlot {
	for t := f.head; t < f.next; t++ {
		if s := &f.buf[t%uint64(len(f.buf))]; !s.done {
			return s
		}
	}
	return nil
}
