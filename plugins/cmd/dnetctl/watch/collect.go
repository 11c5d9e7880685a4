package watch

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/hostports"
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
// records describe, releases the addresses through the IPAM plugin and
// network config the link record names, and frees the host ports. Then
// the networks left without attachments go, and the host's forwarding is
// given back once no attachment is left (attachment.ReleaseHost).
// dnetctl gc without a conflist does the same once, taking a link
// record's age as the time its veth has been missing.

// Collector finds and deletes attachments whose container is gone.
type Collector struct {
	Grace    time.Duration
	CNIPath  []string
	CacheDir string // libcni's cache ("" for its default, /var/lib/cni)

	since map[string]time.Time // by owner tag: when its veth was first seen missing
}

// Once collects, in one pass, the attachments whose veth is missing and
// whose link record is older than Grace (an ADD writes it before it makes
// the pair), then the networks and host state they leave unused. It
// returns how many it collected.
func (c *Collector) Once(env attachment.Env, l *log.Logger, now time.Time) (int, error) {
	c.since = map[string]time.Time{}
	tags, err := env.Store.List(attachment.LinkKind)
	if err != nil {
		return 0, err
	}
	for _, tag := range tags {
		if fi, err := os.Stat(filepath.Join(env.Store.Dir, attachment.LinkKind, tag+".json")); err == nil {
			c.since[tag] = fi.ModTime()
		}
	}
	return c.sweep(env, l, now)
}

func (c *Collector) sweep(env attachment.Env, l *log.Logger, now time.Time) (int, error) {
	n, err := c.sweepLinks(env, l, now)
	return n, errors.Join(err, c.afterwards(env, l))
}

// afterwards removes the networks left without attachments and gives the
// host's forwarding back when no attachment is left at all.
func (c *Collector) afterwards(env attachment.Env, l *log.Logger) error {
	err := env.PruneMembers()
	done, ferr := env.ReleaseHost()
	for _, d := range done {
		l.Printf("no attachment left: %s", d)
	}
	return errors.Join(err, ferr)
}

func (c *Collector) sweepLinks(env attachment.Env, l *log.Logger, now time.Time) (int, error) {
	if c.since == nil {
		c.since = map[string]time.Time{}
	}
	tags, err := env.Store.List(attachment.LinkKind)
	if err != nil {
		return 0, err
	}
	seen, collected := map[string]bool{}, 0
	var errs []error
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
		if err := c.delete(env, rec); err != nil {
			errs = append(errs, fmt.Errorf("collect %s/%s on %s (veth %s gone for %s): %v", rec.Owner.ContainerID, rec.Owner.IfName, rec.Owner.Network, rec.HostVeth, now.Sub(first).Round(time.Second), err))
			continue
		}
		delete(c.since, tag)
		collected++
		l.Printf("collected %s/%s on network %s: its veth %s was gone for %s", rec.Owner.ContainerID, rec.Owner.IfName, rec.Owner.Network, rec.HostVeth, now.Sub(first).Round(time.Second))
	}
	for tag := range c.since {
		if !seen[tag] {
			delete(c.since, tag) // deleted meanwhile, by a DEL
		}
	}
	return collected, errors.Join(errs...)
}

// delete runs the DEL the runtime never sent.
func (c *Collector) delete(env attachment.Env, rec attachment.Link) error {
	o := rec.Owner
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
	return c.forget(env, rec)
}

// forget removes o's netfilter state and records, its host port claims,
// its addresses (through the IPAM plugin the link record names) and its
// link record: what can be done without the runtime's cached config.
func (c *Collector) forget(env attachment.Env, rec attachment.Link) error {
	o := rec.Owner
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
	errs = append(errs, hostports.New(env.Store.Dir).Release(o))
	if rec.IPAM != nil {
		errs = append(errs, c.releaseAddresses(o, rec.IPAM))
	}
	if err := errors.Join(errs...); err != nil {
		return err // the link record stays: the next pass tries again
	}
	if err := env.Store.Remove(attachment.LinkKind, o.Tag()); err != nil {
		return err
	}
	if rec.IPAM == nil {
		return errNoIPAM
	}
	return nil
}

// releaseAddresses runs the IPAM plugin's DEL with the network's config.
func (c *Collector) releaseAddresses(o netfilter.Owner, ipam *attachment.LinkIPAM) error {
	path, err := invoke.FindInPath(ipam.Type, c.CNIPath)
	if err != nil {
		return fmt.Errorf("release its addresses: %v", err)
	}
	args := &invoke.Args{Command: "DEL", ContainerID: o.ContainerID, IfName: o.IfName, Path: strings.Join(c.CNIPath, ":")}
	if err := invoke.ExecPluginWithoutResult(context.Background(), path, ipam.Config, args, nil); err != nil {
		return fmt.Errorf("release its addresses through %s: %v", ipam.Type, err)
	}
	return nil
}

var errNoIPAM = errors.New("its rules and records are removed, but its link record, written by an older version, names no IPAM plugin: its address stays reserved until the runtime's GC")
