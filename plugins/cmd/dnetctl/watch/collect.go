package watch

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// Runtimes that never send CNI GC (containerd 1.6 and 1.7), a runtime
// that crashed, a node that rebooted: each can leave an attachment whose
// container is gone. A container's network namespace going away takes
// its end of the veth pair with it, and the kernel deletes the pair, so
// the host end's absence is the sign, whichever runtime made it. Once it
// has been absent for Grace (an ADD writes its link record before it
// makes the pair), the attachment is deleted as CNI GC would: a DEL
// through libcni with the config and arguments the runtime's libcni
// cached at ADD. Without such a cache entry, the agent removes what the
// records describe and says that the address stays reserved.

// Collector finds and deletes attachments whose container is gone.
type Collector struct {
	Grace    time.Duration
	CNIPath  []string
	CacheDir string // libcni's cache ("" for its default, /var/lib/cni)

	since map[string]time.Time // by owner tag: when its veth was first seen missing
}

func (c *Collector) sweep(env attachment.Env, l *log.Logger, now time.Time) {
	if c.since == nil {
		c.since = map[string]time.Time{}
	}
	tags, err := env.Store.List(attachment.LinkKind)
	if err != nil {
		l.Printf("collect: %v", err)
		return
	}
	seen := map[string]bool{}
	for _, tag := range tags {
		var rec attachment.Link
		if found, err := env.Store.Load(attachment.LinkKind, tag, &rec); err != nil || !found || !rec.Intact(tag) {
			continue
		}
		seen[tag] = true
		if _, err := netlink.LinkByName(rec.HostVeth); err == nil {
			delete(c.since, tag)
			continue
		}
		first, ok := c.since[tag]
		if !ok {
			c.since[tag] = now
			continue
		}
		if now.Sub(first) < c.Grace {
			continue
		}
		if err := c.delete(env, rec.Owner); err != nil {
			l.Printf("collect %s/%s on %s (veth %s gone for %s): %v", rec.Owner.ContainerID, rec.Owner.IfName, rec.Owner.Network, rec.HostVeth, now.Sub(first).Round(time.Second), err)
			continue
		}
		delete(c.since, tag)
		l.Printf("collected %s/%s on network %s: its veth %s was gone for %s", rec.Owner.ContainerID, rec.Owner.IfName, rec.Owner.Network, rec.HostVeth, now.Sub(first).Round(time.Second))
	}
	for tag := range c.since {
		if !seen[tag] {
			delete(c.since, tag) // deleted meanwhile, by a DEL
		}
	}
}

// delete runs the DEL the runtime never sent.
func (c *Collector) delete(env attachment.Env, o netfilter.Owner) error {
	cni := libcni.NewCNIConfigWithCacheDir(c.CNIPath, c.CacheDir, nil)
	raw, rt, err := cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: o.Network}, &libcni.RuntimeConf{ContainerID: o.ContainerID, IfName: o.IfName})
	if err == nil && raw != nil && rt != nil {
		list, err := libcni.ConfListFromBytes(raw)
		if err != nil {
			return err
		}
		rt.NetNS = "" // gone: each plugin deletes what it can without it
		return cni.DelNetworkList(context.Background(), list, rt)
	}
	return c.forget(env, o)
}

// forget removes o's netfilter state and records, and its link record:
// what the agent can do without the network's config. host-local's
// reservation needs that config; the runtime's next GC releases it.
func (c *Collector) forget(env attachment.Env, o netfilter.Owner) error {
	var errs []error
	for _, k := range attachment.Kinds {
		st, found, err := k.Stored(env, o.Tag())
		if err != nil || !found {
			errs = append(errs, err)
			continue
		}
		ch := env.Begin("watch collect")
		st.Remove(ch)
		errs = append(errs, ch.Commit())
	}
	errs = append(errs, env.Store.Remove(attachment.LinkKind, o.Tag()))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return errNoCache
}

var errNoCache = errors.New("no libcni cache entry for it: its rules and records are removed, but its address stays reserved until the runtime's GC")
