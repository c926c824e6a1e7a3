// Command etcdref drives etcd v3.4's own WAL and snapshot code so that
// raftwal's tests can compare raftwal against the real implementation.
//
// It is part of the raftwal project and contains no etcd source code; it only
// imports etcd's Go packages. Build it in GOPATH mode against Debian's
// golang-etcd-server-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o etcdref .
//
// Every command prints exactly one JSON object on stdout and exits 0; usage
// errors (bad flags, malformed JSON input, unknown ops or kinds) print a JSON
// object with "usage_error": true and exit 2. Byte strings are lowercase hex;
// a nil []byte is JSON null and an empty non-nil one is "". Integers are
// emitted and parsed exactly as uint64/int64 (no float rounding).
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/etcdserver/api/snap"
	"go.etcd.io/etcd/etcdserver/api/snap/snappb"
	"go.etcd.io/etcd/raft/raftpb"
	"go.etcd.io/etcd/wal"
	"go.etcd.io/etcd/wal/walpb"
	"go.uber.org/zap"
)

const defaultSegmentSize = 64 * 1000 * 1000

var lg = zap.NewNop()

// usageError aborts a command with exit status 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...interface{}) {
	panic(usageError{fmt.Sprintf(format, args...)})
}

type obj map[string]interface{}

func emit(o obj) {
	b, err := json.Marshal(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdref: cannot encode output: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.Write(append(b, '\n'))
}

func errValue(err error) interface{} {
	if err == nil {
		return nil
	}
	return err.Error()
}

func hexOrNull(b []byte) interface{} {
	if b == nil {
		return nil
	}
	return hex.EncodeToString(b)
}

// hexBytes is a JSON hex string that remembers null: null decodes to a nil
// slice, "" to an empty non-nil slice.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	if len(d) == 0 {
		d = []byte{}
	}
	*h = d
	return nil
}

func (h hexBytes) bytes() []byte {
	if h == nil {
		return nil
	}
	return []byte(h)
}

type jEntry struct {
	Term  uint64   `json:"term"`
	Index uint64   `json:"index"`
	Type  int32    `json:"type"`
	Data  hexBytes `json:"data"`
}

func (e jEntry) entry() raftpb.Entry {
	return raftpb.Entry{Term: e.Term, Index: e.Index, Type: raftpb.EntryType(e.Type), Data: e.Data.bytes()}
}

func entriesOut(ents []raftpb.Entry) []obj {
	out := make([]obj, 0, len(ents))
	for _, e := range ents {
		out = append(out, obj{"term": e.Term, "index": e.Index, "type": int32(e.Type), "data": hexOrNull(e.Data)})
	}
	return out
}

func entriesIn(in []jEntry) []raftpb.Entry {
	if in == nil {
		return nil
	}
	out := make([]raftpb.Entry, len(in))
	for i, e := range in {
		out[i] = e.entry()
	}
	return out
}

func hardStateIn(v []uint64) raftpb.HardState {
	if len(v) == 0 {
		return raftpb.HardState{}
	}
	if len(v) != 3 {
		usagef("hard_state must be [term, vote, commit]")
	}
	return raftpb.HardState{Term: v[0], Vote: v[1], Commit: v[2]}
}

func hardStateOut(s raftpb.HardState) []uint64 {
	return []uint64{s.Term, s.Vote, s.Commit}
}

type jConfState struct {
	Voters         []uint64 `json:"voters"`
	Learners       []uint64 `json:"learners"`
	VotersOutgoing []uint64 `json:"voters_outgoing"`
	LearnersNext   []uint64 `json:"learners_next"`
	AutoLeave      bool     `json:"auto_leave"`
}

func (c jConfState) confState() raftpb.ConfState {
	return raftpb.ConfState{
		Voters:         c.Voters,
		Learners:       c.Learners,
		VotersOutgoing: c.VotersOutgoing,
		LearnersNext:   c.LearnersNext,
		AutoLeave:      c.AutoLeave,
	}
}

func u64s(v []uint64) []uint64 {
	if v == nil {
		return []uint64{}
	}
	return v
}

func confStateOut(c raftpb.ConfState) obj {
	return obj{
		"voters":          u64s(c.Voters),
		"learners":        u64s(c.Learners),
		"voters_outgoing": u64s(c.VotersOutgoing),
		"learners_next":   u64s(c.LearnersNext),
		"auto_leave":      c.AutoLeave,
	}
}

type jSnapMeta struct {
	ConfState jConfState `json:"conf_state"`
	Index     uint64     `json:"index"`
	Term      uint64     `json:"term"`
}

func (m jSnapMeta) meta() raftpb.SnapshotMetadata {
	return raftpb.SnapshotMetadata{ConfState: m.ConfState.confState(), Index: m.Index, Term: m.Term}
}

func readStdinJSON(v interface{}) {
	b, err := ioutil.ReadAll(os.Stdin)
	if err != nil {
		usagef("reading stdin: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		usagef("bad JSON on stdin: %v", err)
	}
}

// panicErr turns a recovered non-usage panic into an error value.
func panicErr(r interface{}) error {
	if u, ok := r.(usageError); ok {
		panic(u)
	}
	return fmt.Errorf("panic: %v", r)
}

// guard runs f, converting a panic inside etcd code into an error.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicErr(r)
		}
	}()
	return f()
}

type flags struct {
	fs *flag.FlagSet
}

func newFlags(name string) flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(ioutil.Discard)
	return flags{fs}
}

func (f flags) parse(args []string) {
	if err := f.fs.Parse(args); err != nil {
		usagef("%s: %v", f.fs.Name(), err)
	}
	if f.fs.NArg() != 0 {
		usagef("%s: unexpected arguments %q", f.fs.Name(), f.fs.Args())
	}
}

func requireDir(cmd, dir string) {
	if dir == "" {
		usagef("%s: --dir is required", cmd)
	}
}

// readAllResult reads a WAL opened with Open/OpenForRead and describes it.
func readAllResult(w *wal.WAL) (obj, error) {
	var (
		md   []byte
		st   raftpb.HardState
		ents []raftpb.Entry
		rerr error
	)
	if perr := guard(func() error {
		md, st, ents, rerr = w.ReadAll()
		return nil
	}); perr != nil {
		rerr = perr
	}
	return obj{
		"metadata":   hexOrNull(md),
		"hard_state": hardStateOut(st),
		"entries":    entriesOut(ents),
		"error":      errValue(rerr),
	}, rerr
}

func emptyRead(err error) obj {
	return obj{"metadata": nil, "hard_state": []uint64{0, 0, 0}, "entries": []obj{}, "error": errValue(err)}
}

// ---- readall ---------------------------------------------------------------

func cmdReadAll(args []string) {
	f := newFlags("readall")
	dir := f.fs.String("dir", "", "WAL directory")
	index := f.fs.Uint64("index", 0, "snapshot index")
	term := f.fs.Uint64("term", 0, "snapshot term")
	write := f.fs.Bool("write", false, "open in write mode (wal.Open)")
	f.parse(args)
	requireDir("readall", *dir)

	ws := walpb.Snapshot{Index: *index, Term: *term}
	var w *wal.WAL
	err := guard(func() (e error) {
		if *write {
			w, e = wal.Open(lg, *dir, ws)
		} else {
			w, e = wal.OpenForRead(lg, *dir, ws)
		}
		return e
	})
	if err != nil {
		emit(emptyRead(err))
		return
	}
	out, _ := readAllResult(w)
	// A read-only WAL has no directory fd, so its Close reports
	// "invalid argument"; only a write-mode Close error is meaningful.
	cerr := guard(w.Close)
	if *write {
		out["close_error"] = errValue(cerr)
	} else {
		out["close_error"] = nil
	}
	emit(out)
}

// ---- script ----------------------------------------------------------------

type scriptOp struct {
	Op          string   `json:"op"`
	Metadata    hexBytes `json:"metadata"`
	SegmentSize *int64   `json:"segment_size"`
	Index       uint64   `json:"index"`
	Term        uint64   `json:"term"`
	HardState   []uint64 `json:"hard_state"`
	Entries     []jEntry `json:"entries"`
}

func setSegmentSize(p *int64) {
	if p == nil {
		wal.SegmentSizeBytes = defaultSegmentSize
	} else {
		wal.SegmentSizeBytes = *p
	}
}

func cmdScript(args []string) {
	f := newFlags("script")
	dir := f.fs.String("dir", "", "WAL directory")
	f.parse(args)
	requireDir("script", *dir)

	var ops []scriptOp
	readStdinJSON(&ops)

	var w *wal.WAL
	results := make([]interface{}, 0, len(ops))
	for k, op := range ops {
		var res interface{}
		var err error
		switch op.Op {
		case "create":
			setSegmentSize(op.SegmentSize)
			err = guard(func() (e error) {
				w, e = wal.Create(lg, *dir, op.Metadata.bytes())
				return e
			})
		case "open":
			setSegmentSize(op.SegmentSize)
			err = guard(func() (e error) {
				w, e = wal.Open(lg, *dir, walpb.Snapshot{Index: op.Index, Term: op.Term})
				return e
			})
			if err != nil {
				res = emptyRead(err)
			} else {
				res, err = readAllResult(w)
			}
		case "read":
			// extra: OpenForRead+ReadAll on a separate handle (w untouched)
			var r *wal.WAL
			err = guard(func() (e error) {
				r, e = wal.OpenForRead(lg, *dir, walpb.Snapshot{Index: op.Index, Term: op.Term})
				return e
			})
			if err != nil {
				res = emptyRead(err)
			} else {
				res, err = readAllResult(r)
			}
		case "set_segment_size":
			if op.SegmentSize == nil {
				usagef("script op %d: set_segment_size needs segment_size", k)
			}
			setSegmentSize(op.SegmentSize)
		case "save":
			st := hardStateIn(op.HardState)
			ents := entriesIn(op.Entries)
			err = guard(func() error { return w.Save(st, ents) })
		case "save_snapshot":
			err = guard(func() error { return w.SaveSnapshot(walpb.Snapshot{Index: op.Index, Term: op.Term}) })
		case "sync":
			err = guard(w.Sync)
		case "release_lock_to":
			err = guard(func() error { return w.ReleaseLockTo(op.Index) })
		case "close":
			err = guard(w.Close)
		default:
			usagef("script op %d: unknown op %q", k, op.Op)
		}
		results = append(results, res)
		if err != nil {
			emit(obj{"ok": false, "error": err.Error(), "op_index": k, "results": results})
			return
		}
	}
	emit(obj{"ok": true, "error": nil, "results": results})
}

// ---- verify / valid-snapshots / repair -------------------------------------

func cmdVerify(args []string) {
	f := newFlags("verify")
	dir := f.fs.String("dir", "", "WAL directory")
	index := f.fs.Uint64("index", 0, "snapshot index")
	term := f.fs.Uint64("term", 0, "snapshot term")
	f.parse(args)
	requireDir("verify", *dir)
	err := guard(func() error { return wal.Verify(lg, *dir, walpb.Snapshot{Index: *index, Term: *term}) })
	emit(obj{"error": errValue(err)})
}

func cmdValidSnapshots(args []string) {
	f := newFlags("valid-snapshots")
	dir := f.fs.String("dir", "", "WAL directory")
	f.parse(args)
	requireDir("valid-snapshots", *dir)
	var snaps []walpb.Snapshot
	err := guard(func() (e error) {
		snaps, e = wal.ValidSnapshotEntries(lg, *dir)
		return e
	})
	out := make([][2]uint64, 0, len(snaps))
	for _, s := range snaps {
		out = append(out, [2]uint64{s.Index, s.Term})
	}
	emit(obj{"snapshots": out, "error": errValue(err)})
}

func cmdRepair(args []string) {
	f := newFlags("repair")
	dir := f.fs.String("dir", "", "WAL directory")
	f.parse(args)
	requireDir("repair", *dir)
	var ok bool
	err := guard(func() error {
		ok = wal.Repair(lg, *dir)
		return nil
	})
	emit(obj{"ok": ok, "error": errValue(err)})
}

// ---- snapshots ---------------------------------------------------------------

type jSnapIn struct {
	Data      hexBytes   `json:"data"`
	Index     uint64     `json:"index"`
	Term      uint64     `json:"term"`
	ConfState jConfState `json:"conf_state"`
}

func cmdSnapSave(args []string) {
	f := newFlags("snap-save")
	dir := f.fs.String("dir", "", "snapshot directory")
	f.parse(args)
	requireDir("snap-save", *dir)
	var in jSnapIn
	readStdinJSON(&in)
	s := raftpb.Snapshot{
		Data: in.Data.bytes(),
		Metadata: raftpb.SnapshotMetadata{
			ConfState: in.ConfState.confState(),
			Index:     in.Index,
			Term:      in.Term,
		},
	}
	err := guard(func() error { return snap.New(lg, *dir).SaveSnap(s) })
	emit(obj{"error": errValue(err)})
}

// cmdSnapSaveDB streams the file --from through the snapshotter's
// SaveDBFrom for snapshot index --index.
func cmdSnapSaveDB(args []string) {
	f := newFlags("snap-save-db")
	dir := f.fs.String("dir", "", "snapshot directory")
	from := f.fs.String("from", "", "file whose bytes are the database")
	index := f.fs.Uint64("index", 0, "snapshot index")
	f.parse(args)
	requireDir("snap-save-db", *dir)
	var n int64
	err := guard(func() error {
		r, e := os.Open(*from)
		if e != nil {
			return e
		}
		defer r.Close()
		n, e = snap.New(lg, *dir).SaveDBFrom(r, *index)
		return e
	})
	emit(obj{"bytes": n, "error": errValue(err)})
}

// cmdSnapDBPath asks the snapshotter's DBFilePath for snapshot index --index.
func cmdSnapDBPath(args []string) {
	f := newFlags("snap-db-path")
	dir := f.fs.String("dir", "", "snapshot directory")
	index := f.fs.Uint64("index", 0, "snapshot index")
	f.parse(args)
	requireDir("snap-db-path", *dir)
	var path string
	err := guard(func() (e error) {
		path, e = snap.New(lg, *dir).DBFilePath(*index)
		return e
	})
	emit(obj{"path": path, "error": errValue(err)})
}

func cmdSnapLoad(args []string) {
	f := newFlags("snap-load")
	dir := f.fs.String("dir", "", "snapshot directory")
	walSnaps := f.fs.String("wal-snaps", "", "JSON [[index,term],...]; use LoadNewestAvailable")
	f.parse(args)
	requireDir("snap-load", *dir)
	var (
		s   *raftpb.Snapshot
		err error
	)
	ss := snap.New(lg, *dir)
	if *walSnaps != "" {
		var pairs [][2]uint64
		if e := json.Unmarshal([]byte(*walSnaps), &pairs); e != nil {
			usagef("snap-load: bad --wal-snaps: %v", e)
		}
		ws := make([]walpb.Snapshot, 0, len(pairs))
		for _, p := range pairs {
			ws = append(ws, walpb.Snapshot{Index: p[0], Term: p[1]})
		}
		err = guard(func() (e error) {
			s, e = ss.LoadNewestAvailable(ws)
			return e
		})
	} else {
		err = guard(func() (e error) {
			s, e = ss.Load()
			return e
		})
	}
	var so interface{}
	if s != nil {
		so = obj{
			"data":       hexOrNull(s.Data),
			"index":      s.Metadata.Index,
			"term":       s.Metadata.Term,
			"conf_state": confStateOut(s.Metadata.ConfState),
		}
	}
	emit(obj{"snapshot": so, "error": errValue(err)})
}

// ---- marshal -----------------------------------------------------------------

type jChange struct {
	Type   int32  `json:"type"`
	NodeID uint64 `json:"node_id"`
}

type jMarshal struct {
	Kind string `json:"kind"`

	Term           uint64     `json:"term"`
	Index          uint64     `json:"index"`
	Type           int64      `json:"type"`
	Data           hexBytes   `json:"data"`
	Vote           uint64     `json:"vote"`
	Commit         uint64     `json:"commit"`
	Voters         []uint64   `json:"voters"`
	Learners       []uint64   `json:"learners"`
	VotersOutgoing []uint64   `json:"voters_outgoing"`
	LearnersNext   []uint64   `json:"learners_next"`
	AutoLeave      bool       `json:"auto_leave"`
	ConfState      jConfState `json:"conf_state"`
	Metadata       jSnapMeta  `json:"metadata"`
	Crc            uint32     `json:"crc"`
	ID             uint64     `json:"id"`
	NodeID         uint64     `json:"node_id"`
	Context        hexBytes   `json:"context"`
	Transition     int32      `json:"transition"`
	Changes        []jChange  `json:"changes"`
}

type marshaler interface {
	Marshal() ([]byte, error)
}

func (m jMarshal) message(k int) marshaler {
	switch m.Kind {
	case "entry":
		return &raftpb.Entry{Term: m.Term, Index: m.Index, Type: raftpb.EntryType(m.Type), Data: m.Data.bytes()}
	case "hard_state":
		return &raftpb.HardState{Term: m.Term, Vote: m.Vote, Commit: m.Commit}
	case "conf_state":
		c := jConfState{m.Voters, m.Learners, m.VotersOutgoing, m.LearnersNext, m.AutoLeave}.confState()
		return &c
	case "snapshot_metadata":
		md := jSnapMeta{ConfState: m.ConfState, Index: m.Index, Term: m.Term}.meta()
		return &md
	case "snapshot":
		return &raftpb.Snapshot{Data: m.Data.bytes(), Metadata: m.Metadata.meta()}
	case "wal_snapshot":
		return &walpb.Snapshot{Index: m.Index, Term: m.Term}
	case "record":
		return &walpb.Record{Type: m.Type, Crc: m.Crc, Data: m.Data.bytes()}
	case "snap_file":
		return &snappb.Snapshot{Crc: m.Crc, Data: m.Data.bytes()}
	case "conf_change":
		return &raftpb.ConfChange{ID: m.ID, Type: raftpb.ConfChangeType(m.Type), NodeID: m.NodeID, Context: m.Context.bytes()}
	case "conf_change_v2":
		cc := &raftpb.ConfChangeV2{Transition: raftpb.ConfChangeTransition(m.Transition), Context: m.Context.bytes()}
		for _, c := range m.Changes {
			cc.Changes = append(cc.Changes, raftpb.ConfChangeSingle{Type: raftpb.ConfChangeType(c.Type), NodeID: c.NodeID})
		}
		return cc
	}
	usagef("marshal item %d: unknown kind %q", k, m.Kind)
	return nil
}

func cmdMarshal(args []string) {
	f := newFlags("marshal")
	f.parse(args)
	var items []jMarshal
	readStdinJSON(&items)
	out := make([]string, 0, len(items))
	for k, it := range items {
		b, err := it.message(k).Marshal()
		if err != nil {
			emit(obj{"hex": out, "error": err.Error(), "item_index": k})
			return
		}
		out = append(out, hex.EncodeToString(b))
	}
	emit(obj{"hex": out, "error": nil})
}

// ---- bench / fixtures ----------------------------------------------------------

type writeSpec struct {
	dir         string
	entries     uint64
	size        int
	batch       uint64
	segmentSize int64
	metadata    []byte
}

func writeFlags(name string, args []string) writeSpec {
	f := newFlags(name)
	dir := f.fs.String("dir", "", "WAL directory (must not contain *.wal)")
	n := f.fs.Uint64("entries", 0, "number of entries")
	size := f.fs.Int("size", 0, "data bytes per entry")
	batch := f.fs.Uint64("batch", 1, "entries per Save")
	seg := f.fs.Int64("segment-size", defaultSegmentSize, "wal.SegmentSizeBytes")
	md := f.fs.String("metadata", "", "metadata record bytes as hex (default: none, i.e. nil)")
	f.parse(args)
	requireDir(name, *dir)
	if *batch == 0 || *size < 0 {
		usagef("%s: --batch must be > 0 and --size >= 0", name)
	}
	var mdb []byte
	if *md != "" {
		var err error
		if mdb, err = hex.DecodeString(*md); err != nil {
			usagef("%s: bad --metadata: %v", name, err)
		}
	}
	return writeSpec{*dir, *n, *size, *batch, *seg, mdb}
}

// writeEntries creates a WAL and saves entries 1..n (term 1, type normal)
// whose data byte j is byte(index+j), in Saves of `batch` entries, each with
// HardState{Term: 1, Vote: 1, Commit: last index of the batch}. It returns
// the time spent in the Save loop and the number of Saves.
func writeEntries(s writeSpec) (time.Duration, uint64, error) {
	wal.SegmentSizeBytes = s.segmentSize
	var w *wal.WAL
	if err := guard(func() (e error) {
		w, e = wal.Create(lg, s.dir, s.metadata)
		return e
	}); err != nil {
		return 0, 0, err
	}
	pattern := make([]byte, 256+s.size)
	for i := range pattern {
		pattern[i] = byte(i)
	}
	ents := make([]raftpb.Entry, 0, s.batch)
	var saves uint64
	start := time.Now()
	err := guard(func() error {
		for next := uint64(1); next <= s.entries; {
			ents = ents[:0]
			for ; next <= s.entries && uint64(len(ents)) < s.batch; next++ {
				o := int(next % 256)
				ents = append(ents, raftpb.Entry{Term: 1, Index: next, Type: raftpb.EntryNormal, Data: pattern[o : o+s.size]})
			}
			st := raftpb.HardState{Term: 1, Vote: 1, Commit: next - 1}
			if err := w.Save(st, ents); err != nil {
				return err
			}
			saves++
		}
		return nil
	})
	took := time.Since(start)
	if cerr := guard(w.Close); err == nil {
		err = cerr
	}
	return took, saves, err
}

func listDir(dir string) []string {
	infos, err := ioutil.ReadDir(dir)
	names := make([]string, 0, len(infos))
	if err != nil {
		return names
	}
	for _, fi := range infos {
		names = append(names, fi.Name())
	}
	sort.Strings(names)
	return names
}

func cmdBenchSave(args []string) {
	s := writeFlags("bench-save", args)
	took, saves, err := writeEntries(s)
	emit(obj{"seconds": took.Seconds(), "entries": s.entries, "saves": saves, "error": errValue(err)})
}

func cmdWriteFixture(args []string) {
	s := writeFlags("write-fixture", args)
	_, saves, err := writeEntries(s)
	emit(obj{"entries": s.entries, "saves": saves, "last_index": s.entries, "files": listDir(s.dir), "error": errValue(err)})
}

func cmdBenchRead(args []string) {
	f := newFlags("bench-read")
	dir := f.fs.String("dir", "", "WAL directory")
	f.parse(args)
	requireDir("bench-read", *dir)
	var (
		n, last uint64
		took    time.Duration
	)
	err := guard(func() error {
		start := time.Now()
		w, err := wal.OpenForRead(lg, *dir, walpb.Snapshot{})
		if err != nil {
			return err
		}
		_, _, ents, err := w.ReadAll()
		took = time.Since(start)
		n = uint64(len(ents))
		if n > 0 {
			last = ents[n-1].Index
		}
		w.Close()
		return err
	})
	emit(obj{"seconds": took.Seconds(), "entries": n, "last_index": last, "error": errValue(err)})
}

// ---- main ------------------------------------------------------------------------

var commands = map[string]func([]string){
	"readall":         cmdReadAll,
	"script":          cmdScript,
	"verify":          cmdVerify,
	"valid-snapshots": cmdValidSnapshots,
	"repair":          cmdRepair,
	"snap-save":       cmdSnapSave,
	"snap-load":       cmdSnapLoad,
	"snap-save-db":    cmdSnapSaveDB,
	"snap-db-path":    cmdSnapDBPath,
	"marshal":         cmdMarshal,
	"bench-save":      cmdBenchSave,
	"bench-read":      cmdBenchRead,
	"write-fixture":   cmdWriteFixture,
}

func commandNames() string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func main() {
	defer func() {
		if r := recover(); r != nil {
			var u usageError
			if e, ok := r.(error); ok && errors.As(e, &u) {
				emit(obj{"error": u.msg, "usage_error": true})
				fmt.Fprintln(os.Stderr, "etcdref:", u.msg)
				os.Exit(2)
			}
			panic(r)
		}
	}()
	if len(os.Args) < 2 {
		usagef("usage: etcdref COMMAND [flags]; commands: %s", commandNames())
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		usagef("unknown command %q; commands: %s", os.Args[1], commandNames())
	}
	cmd(os.Args[2:])
}
