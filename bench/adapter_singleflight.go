package bench

import (
	"context"

	"golang.org/x/sync/singleflight"
)

// singleflightDo is golang.org/x/sync/singleflight alone, the way it is
// usually written: Do, with the fetch closing over the first caller's ctx.
// Nothing is kept between calls.
type singleflightDo struct {
	g     singleflight.Group
	fetch Fetch
}

func newSingleflightDo(s Setup) (Cache, error) { return &singleflightDo{fetch: s.Fetch}, nil }

func (a *singleflightDo) Get(ctx context.Context, key string) (string, error) {
	v, err, _ := a.g.Do(key, func() (any, error) { return a.fetch(ctx, key) })
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (a *singleflightDo) Close() {}

// singleflightDoChan is DoChan with a select on the caller's ctx: the
// like-for-like x/sync form, in which each caller can stop waiting.
type singleflightDoChan struct {
	g     singleflight.Group
	fetch Fetch
}

func newSingleflightDoChan(s Setup) (Cache, error) { return &singleflightDoChan{fetch: s.Fetch}, nil }

func (a *singleflightDoChan) Get(ctx context.Context, key string) (string, error) {
	ch := a.g.DoChan(key, func() (any, error) { return a.fetch(ctx, key) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (a *singleflightDoChan) Close() {}
