package attachment

import (
	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
)

// Records returns every record of this kind, by owner tag.
func (k Kind[S]) Records(env Env) (map[string]Record[S], error) {
	tags, err := env.Store.List(k.Name)
	if err != nil {
		return nil, cnierr.IO("%s: %v", k.Plugin, err)
	}
	out := make(map[string]Record[S], len(tags))
	for _, tag := range tags {
		var rec Record[S]
		if _, err := env.Store.Load(k.Name, tag, &rec); err != nil {
			return nil, cnierr.IO("%s: %v", k.Plugin, err)
		}
		out[tag] = rec
	}
	return out, nil
}

// Reapply installs again what rec says, through the backend it names,
// after a firewall flush or reload. A spec whose state is complete stays
// as it is; one that is partly or wholly gone is removed (what is left of
// it) and added again, so nothing is doubled.
func (k Kind[S]) Reapply(env Env, rec Record[S]) error {
	for _, spec := range rec.Specs {
		be, err := env.Backends.New(rec.Backend, spec.Family())
		if err != nil {
			return cnierr.Config("%s: %v", k.Plugin, err)
		}
		if k.Check(be, spec) == nil {
			continue
		}
		if err := k.Del(be, spec); err != nil {
			return cnierr.Wrap(err, k.Plugin)
		}
		if err := k.Add(be, spec); err != nil {
			return cnierr.Wrap(err, k.Plugin)
		}
	}
	return nil
}

// Verify checks that rec's state is in place, through the backend it names.
func (k Kind[S]) Verify(env Env, rec Record[S]) error {
	for _, spec := range rec.Specs {
		be, err := env.Backends.New(rec.Backend, spec.Family())
		if err != nil {
			return cnierr.Config("%s: %v", k.Plugin, err)
		}
		if err := k.Check(be, spec); err != nil {
			return cnierr.Drift("%s: %v", k.Plugin, err)
		}
	}
	return nil
}
