package consumer

import (
	"context"
	"fmt"
	"runtime/debug"
)

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

// callOnHandle calls h.OnHandle; a panic is recovered and logged (the
// handler then runs with the ctx it had).
func (k *Consumer) callOnHandle(h HookHandle, ctx context.Context, ev HandleEvent) (next context.Context, end func(Action, any)) {
	defer func() {
		if v := recover(); v != nil {
			next, end = nil, nil
			k.log.Error("consumer: hook panicked; recovered", "hook", fmt.Sprintf("%T", h), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	return h.OnHandle(ctx, ev)
}

// handleEnd calls end (from handleStart) unless it is nil; a panic is
// recovered and logged.
func (k *Consumer) handleEnd(end func(Action, any), a Action, rec any) {
	if end == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			k.log.Error("consumer: hook panicked; recovered", "hook", "HookHandle end", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	end(a, rec)
}
