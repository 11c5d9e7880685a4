// Command hello is the demo and test workload: a tiny server that answers
// "Hello" over HTTP and UDP and tells each client which address it saw, and
// the matching client. It exists so neither the demo nor the tests assume
// Python, curl or socat inside a namespace.
//
//	hello serve [-port 5000]          TCP (HTTP) and UDP on the same port
//	hello get   URL                   prints the HTTP body
//	hello post  URL BODY              POSTs BODY (JSON), prints the reply (etcd's JSON API in the cluster tests)
//	hello blast HOST:PORT SECONDS     TCP: sends as fast as it can to a sink, prints bytes per second
//	hello udp   HOST:PORT             sends one datagram, prints the reply
//	hello sink  [-port 5000]          TCP: reads each connection to EOF, then closes it (benchmarks)
//	hello pause                       waits for SIGTERM or SIGINT (a pod sandbox's process)
//	hello ping  ADDR                  one ICMP echo to an IPv4 address, prints the replier
//	hello segment HOST:PORT FLAGS     one bare TCP segment (FIN, none, SYN, …), prints the flags that come back
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ExitOnError)
		port := fs.Int("port", 5000, "TCP and UDP port")
		bind := fs.String("bind", "", "address to listen on (every address when empty)")
		_ = fs.Parse(os.Args[2:])
		serve(*bind, *port)
	case "sink":
		fs := flag.NewFlagSet("sink", flag.ExitOnError)
		port := fs.Int("port", 5000, "TCP port")
		_ = fs.Parse(os.Args[2:])
		sink(*port)
	case "pause":
		// The pod sandbox image of the CRI tests is this binary: no registry
		// is reachable, so there is no registry.k8s.io/pause to pull.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
	case "get":
		if len(os.Args) != 3 {
			usage()
		}
		exitOn(get(os.Args[2]))
	case "post":
		if len(os.Args) != 4 {
			usage()
		}
		exitOn(post(os.Args[2], os.Args[3]))
	case "blast":
		if len(os.Args) != 4 {
			usage()
		}
		secs, err := strconv.ParseFloat(os.Args[3], 64)
		exitOn(err)
		exitOn(blast(os.Args[2], time.Duration(secs*float64(time.Second))))
	case "udp":
		if len(os.Args) != 3 {
			usage()
		}
		exitOn(udp(os.Args[2]))
	case "segment":
		if len(os.Args) != 4 {
			usage()
		}
		exitOn(segment(os.Args[2], os.Args[3], 1500*time.Millisecond))
	case "ping":
		if len(os.Args) != 3 {
			usage()
		}
		exitOn(ping(os.Args[2]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: hello serve [-bind ADDR] [-port N] | hello sink [-port N] | hello pause | hello get URL | hello post URL BODY | hello blast HOST:PORT SECONDS | hello udp HOST:PORT | hello ping ADDR")
	os.Exit(2)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

// Reply is what the server says: "Hello" and the client address it saw.
func Reply(peer string) string { return "Hello\npeer=" + peer + "\n" }

func serve(bind string, port int) {
	addr := net.JoinHostPort(bind, strconv.Itoa(port))
	pc, err := net.ListenPacket("udp", addr)
	exitOn(err)
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(Reply(from.String())), from)
		}
	}()
	ln, err := net.Listen("tcp", addr)
	exitOn(err)
	fmt.Printf("hello: serving HTTP and UDP on %s\n", addr)
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, Reply(r.RemoteAddr))
		}),
	}
	exitOn(srv.Serve(ln))
}

func get(url string) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

func post(url, body string) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

// blast measures one TCP connection's throughput to a sink: it writes
// 128 KiB buffers for d, then waits for the sink to have read them all
// (it closes on EOF), and prints the bytes per second.
func blast(addr string, d time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	greet := make([]byte, 1)
	if _, err := io.ReadFull(conn, greet); err != nil {
		return fmt.Errorf("no greeting from the sink: %v", err)
	}
	buf := make([]byte, 128<<10)
	start := time.Now()
	var sent int64
	for time.Since(start) < d {
		n, err := conn.Write(buf)
		sent += int64(n)
		if err != nil {
			return err
		}
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, conn) // the sink closes once it has read everything
	fmt.Printf("%.0f\n", float64(sent)/time.Since(start).Seconds())
	return nil
}

func udp(addr string) error {
	conn, err := net.DialTimeout("udp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("hi")); err != nil {
		return err
	}
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(buf[:n])
	return err
}

// ping sends one ICMP echo request over a raw socket and waits for the
// reply: the tests probe ICMP where no ping is installed.
func ping(addr string) error {
	conn, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return err
	}
	defer conn.Close()
	dst, err := net.ResolveIPAddr("ip4", addr)
	if err != nil {
		return err
	}
	id := os.Getpid() & 0xffff
	msg := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'd', 'n', 'e', 't'}
	sum := 0
	for i := 0; i < len(msg); i += 2 {
		sum += int(msg[i])<<8 | int(msg[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	msg[2], msg[3] = byte(^sum>>8), byte(^sum)
	if _, err := conn.WriteTo(msg, dst); err != nil {
		return err
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return err
		}
		// An echo reply (type 0) to this request; the kernel hands a raw
		// socket every ICMP message, the ones it sends included.
		if n >= 8 && buf[0] == 0 && int(buf[4])<<8|int(buf[5]) == id && from.String() == dst.String() {
			fmt.Printf("reply from %s\n", from)
			return nil
		}
	}
}

// sink serves the benchmarks: it greets every connection with one byte, so
// a client can tell the server accepted it, then drains it until the client
// closes: one full round trip per new connection, or raw throughput.
func sink(port int) {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	exitOn(err)
	fmt.Printf("hello: sink on :%d\n", port)
	for {
		c, err := ln.Accept()
		if err != nil {
			exitOn(err)
		}
		go func() {
			if _, err := c.Write([]byte{'+'}); err != nil {
				_ = c.Close()
				return
			}
			_, _ = io.Copy(io.Discard, c)
			_ = c.Close()
		}()
	}
}
