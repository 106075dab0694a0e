package consumer

import "context"

// handleStart runs the HookHandle hooks before a handler call and returns
// the handler's ctx and the function that ends them (nil without such a
// hook). It does not allocate when no hook implements HookHandle; d does not
// escape.
func (k *Consumer) handleStart(ctx context.Context, s *session, d *Delivery) (context.Context, func(Action, any)) {
	for _, h := range k.cfg.hooks {
		if _, ok := h.(HookHandle); ok {
			return k.startHandle(ctx, s, *d)
		}
	}
	return ctx, nil
}

func (k *Consumer) startHandle(ctx context.Context, s *session, d Delivery) (context.Context, func(Action, any)) {
	ev := HandleEvent{Client: k.client.Name(), Endpoint: s.cn.Endpoint(), Delivery: d}
	var ends []func(Action, any)
	for _, h := range k.cfg.hooks {
		hh, ok := h.(HookHandle)
		if !ok {
			continue
		}
		if next, end := k.callOnHandle(hh, ctx, ev); next != nil {
			ctx = next
			if end != nil {
				ends = append(ends, end)
			}
		}
	}
	switch len(ends) {
	case 0:
		return ctx, nil
	case 1:
		return ctx, ends[0]
	}
	return ctx, func(a Action, rec any) { // the last hook's first: they nest
		for i := len(ends) - 1; i >= 0; i-- {
			k.handleEnd(ends[i], a, rec)
		}
	}
}

// callOnHandle calls h.OnHandle through callHook: a panic is recovered and
// logged, and the handler then runs with the ctx it had (next and end stay nil).
func (k *Consumer) callOnHandle(h HookHandle, ctx context.Context, ev HandleEvent) (next context.Context, end func(Action, any)) {
	k.callHook(func(any) { next, end = h.OnHandle(ctx, ev) }, h)
	return next, end
}

// handleEnd calls end (from handleStart) unless it is nil, through callHook.
func (k *Consumer) handleEnd(end func(Action, any), a Action, rec any) {
	if end != nil {
		k.callHook(func(any) { end(a, rec) }, end)
	}
}
