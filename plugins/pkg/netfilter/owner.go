package netfilter

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Owner identifies one attachment: a container's interface on one network.
// Everything a plugin installs for an attachment is keyed by Owner.Tag, so a
// DEL (even without prevResult, even after a crash) finds exactly its own
// rules and never another container's, on this or any other network.
type Owner struct {
	Network     string
	ContainerID string
	IfName      string
}

// Tag is a short stable hash of the owner, safe in chain names and comments.
func (o Owner) Tag() string {
	sum := sha256.Sum256([]byte(o.Network + "\x00" + o.ContainerID + "\x00" + o.IfName))
	return hex.EncodeToString(sum[:])[:16]
}

// HostVeth is the name of the attachment's host-side veth: derived from
// the owner, so DEL, GC and dnetctl find it even when the container's
// namespace is gone.
func (o Owner) HostVeth() string { return VethPrefix + o.VethHash() }

// VethHash is the part of the tag the names of the attachment's veths
// keep: VethHashLen hex digits.
func (o Owner) VethHash() string { return o.Tag()[:VethHashLen] }

// VethPrefix and VethHashLen make up HostVeth's shape.
const (
	VethPrefix  = "veth"
	VethHashLen = 10
)

// Comment is the human-readable marker put on every rule of this owner.
// It starts with the tag, which is what the backends match on.
func (o Owner) Comment() string {
	id := o.ContainerID
	if len(id) > 64 {
		id = id[:64]
	}
	return fmt.Sprintf("%s net=%s id=%s if=%s", TagPrefix+o.Tag(), o.Network, id, o.IfName)
}

// TagPrefix marks comments written by this project.
const TagPrefix = "dnet:"

// CommentBase marks what an attachment's rules rely on and no DEL removes:
// base chains, jumps and rules, and elements shared by a bridge's containers.
const CommentBase = TagPrefix + "base"

// CommentForwardGuard marks the drop of forwarding no network of ours
// takes part in (ForwardSpec.Guard).
const CommentForwardGuard = TagPrefix + "fwd-guard"

// Marker is what every rule or element of o's comment starts with; the
// backends find o's state by it.
func (o Owner) Marker() string { return TagPrefix + o.Tag() + " " }

// DescribeOwner names the container and network of an owner's comment
// ("dnet:<tag> net=N id=I if=F") for error messages.
func DescribeOwner(c string) string {
	fields := map[string]string{}
	for _, f := range strings.Fields(c) {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields[k] = v
		}
	}
	id := fields["id"]
	if len(id) > 12 {
		id = id[:12] + "…"
	}
	return fmt.Sprintf("container %s (network %s)", id, fields["net"])
}
