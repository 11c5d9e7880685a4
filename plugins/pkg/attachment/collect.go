package attachment

import (
	"errors"
	"fmt"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// Collect removes the state and records of kinds of every attachment of
// network whose owner tag is not in keep (CNI GC): one Change per
// attachment, so one that fails leaves the others collected. A record
// that does not load, or is not its owner's, is reported and left as it
// is: never guessed at, never a reason to remove another's state.
func Collect(env Env, label, network string, keep map[string]bool, kinds ...AnyKind) error {
	byTag := map[string][]Stored{}
	var order []string
	var errs []error
	for _, k := range kinds {
		errs = append(errs, CollectTemps(env.Store, k.Folder(), network, keep, k.RecordNetwork))
		tags, err := env.Store.List(k.Folder())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s records: %w", k.Folder(), err))
			continue
		}
		for _, tag := range tags {
			if keep[tag] {
				continue
			}
			st, found, err := k.Stored(env, tag)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !found {
				continue
			}
			if !st.Intact(tag) {
				errs = append(errs, fmt.Errorf("%s record %s is not an attachment's record: left as it is", k.Folder(), tag))
				continue
			}
			if st.Owner().Network != network {
				continue // another network's
			}
			if byTag[tag] == nil {
				order = append(order, tag)
			}
			byTag[tag] = append(byTag[tag], st)
		}
	}
	for _, tag := range order {
		c := env.Begin(label)
		for _, st := range byTag[tag] {
			st.Remove(c)
		}
		errs = append(errs, c.Commit())
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.IO("%s: GC: %v", label, err)
	}
	return nil
}

// CollectTemps removes the temporary files that crashed Saves left of
// kind's records of network's attachments not in keep: the record is
// written before what it describes, so nothing else of such an ADD
// exists. One whose content names another network stays; a partial one
// names none and goes. networkOf reads the network from a record.
func CollectTemps(store state.Store, kind, network string, keep map[string]bool, networkOf func([]byte) string) error {
	temps, err := store.Temps(kind)
	if err != nil {
		return fmt.Errorf("%s records: %w", kind, err)
	}
	var errs []error
	for _, t := range temps {
		if keep[t.Tag] {
			continue
		}
		if n := networkOf(t.Data); n != "" && n != network {
			continue
		}
		errs = append(errs, store.RemoveTemp(kind, t.Tag))
	}
	return errors.Join(errs...)
}
