package backoff

import (
	"context"
	"time"
)

// Retry calls fn until it returns nil, returns a GiveUp error (returned as is), or ctx ends
// (ctx.Err() is returned). Between attempts it waits according to the error's class: RetrySoon
// waits b.Soon(), anything else b.Next(). notify, when not nil, is told about each failure and
// the delay chosen, for logging.
func Retry(ctx context.Context, b *Backoff, fn func(context.Context) error, notify func(err error, delay time.Duration)) error {
	for {
		err := fn(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var delay time.Duration
		switch ClassOf(err) {
		case ClassNone:
			return nil
		case ClassGiveUp:
			return err
		case ClassRetrySoon:
			delay = b.Soon()
		default:
			delay = b.Next()
		}
		if notify != nil {
			notify(err, delay)
		}
		if err := b.Sleep(ctx, delay); err != nil {
			return err
		}
	}
}
