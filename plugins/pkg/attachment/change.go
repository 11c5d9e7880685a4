package attachment

import (
	"errors"
	"fmt"
	"io"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// Change is one transaction over attachments' state: Install, Remove and
// Reapply queue on it (of any kind, any number of attachments), and
// Commit applies it. Callers always Commit a Change they began: an error
// found while queueing is returned there, after the undo.
type Change struct {
	env     Env
	label   string
	tx      netfilter.Txn
	err     error
	undo    []func(*netfilter.Txn)                       // removals of what installs queued
	failure []func()                                     // on failure: drop the records installs wrote
	success []func() error                               // on success: records to delete
	udp     map[netfilter.Family][]netfilter.PortMapping // on success: UDP conntrack to flush
	netLock *filelock.Lock                               // shared, from the first network joined to the end
	left    []string                                     // bridges whose networks lost a member
	adopt   []adoption                                   // networks of removed records written before network records
}

func (c *Change) flushUDP(f netfilter.Family, ms []netfilter.PortMapping) {
	if c.udp == nil {
		c.udp = map[netfilter.Family][]netfilter.PortMapping{}
	}
	c.udp[f] = append(c.udp[f], ms...)
}

// Begin starts a change; label names the plugin in its errors.
func (env Env) Begin(label string) *Change { return &Change{env: env, label: label} }

func (c *Change) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

func (c *Change) onFailure(f func())       { c.failure = append(c.failure, f) }
func (c *Change) onSuccess(f func() error) { c.success = append(c.success, f) }

// Print writes what Commit would apply to the kernel, applying nothing
// (see netfilter.Txn.Print). For a change that writes no records (a
// restore's Reapply); Commit or drop it after.
func (c *Change) Print(w io.Writer) error {
	if c.err != nil {
		return c.err
	}
	return c.tx.Print(w)
}

// Commit applies the change. If queueing or the transaction failed, it
// removes, in a second transaction, everything the change installed,
// drops the records it wrote, and returns the first error.
func (c *Change) Commit() error {
	err := c.commit()
	c.netLock.Release()
	c.netLock = nil
	// A network whose last member this change removed goes too.
	for _, br := range c.left {
		if c.env.hasMembers(br) {
			continue
		}
		if rerr := c.env.RemoveNetworkIfUnused(br); err == nil {
			err = rerr
		}
	}
	for _, a := range c.adopt {
		if rerr := c.env.adoptNetwork(a); err == nil {
			err = rerr
		}
	}
	return err
}

func (c *Change) commit() error {
	err := c.err
	if err == nil {
		err = c.tx.Commit()
	}
	if err != nil {
		if len(c.undo) > 0 {
			var undo netfilter.Txn
			for i := len(c.undo) - 1; i >= 0; i-- {
				c.undo[i](&undo)
			}
			// A record goes only once what it describes is gone: if the
			// undo fails too (a killed iptables-restore, say), the records
			// stay for the runtime's DEL or a GC to find the state by.
			if uerr := undo.Commit(); uerr != nil {
				return cnierr.Wrap(fmt.Errorf("%w; undoing it failed too, so its records stay for DEL or GC: %v", err, uerr), c.label)
			}
		}
		for i := len(c.failure) - 1; i >= 0; i-- {
			c.failure[i]()
		}
		return cnierr.Wrap(err, c.label)
	}
	var errs []error
	for _, f := range c.success {
		errs = append(errs, f())
	}
	for _, f := range netfilter.BothFamilies {
		if ms := c.udp[f]; len(ms) > 0 {
			errs = append(errs, netfilter.FlushUDP(f, ms))
		}
	}
	return errors.Join(errs...)
}
