package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/backproof/backproof/destination"
)

// Put stores everything read from r under key.
//
// A stream that ends within the first part is sent as one PutObject. A longer
// one becomes a multipart upload: parts of PartSize are read one after the
// other and uploaded with up to Concurrency in flight, so a Put holds at most
// (Concurrency+1) x PartSize bytes whatever the object's size. The upload is
// completed only after r returned io.EOF and every part was stored; on any
// error (r's, ctx's, a part's, completion's) it is aborted, so S3 shows the
// new object entirely or not at all, and the returned error wraps the cause.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	obj, err := s.objectKey(key)
	if err != nil {
		return err
	}
	// Most objects (manifests, small dumps) are far smaller than a part:
	// read a little first so they do not take a part-sized buffer each.
	small := make([]byte, smallObject)
	n, err := readPart(ctx, r, small)
	switch {
	case err == io.EOF:
		return s.putSingle(ctx, key, obj, small[:n])
	case err != nil:
		return s.readError(ctx, key, err)
	}
	bufs := newPartBufs(s.concurrency + 1)
	first := bufs.get(s.partFor(1))
	copy(first, small)
	n, err = readPart(ctx, r, first[len(small):])
	n += len(small)
	switch {
	case err == io.EOF:
		return s.putSingle(ctx, key, obj, first[:n])
	case err != nil:
		return s.readError(ctx, key, err)
	}
	// The first part is full: is there more?
	second := bufs.get(s.partFor(2))
	m, err := readPart(ctx, r, second)
	switch {
	case err == io.EOF && m == 0:
		return s.putSingle(ctx, key, obj, first)
	case err != nil && err != io.EOF:
		return s.readError(ctx, key, err)
	}
	mp := &multipart{s: s, key: key, obj: obj, r: r, bufs: bufs}
	return mp.run(ctx, first, second[:m], err == io.EOF)
}

func (s *Store) putSingle(ctx context.Context, key, obj string, data []byte) error {
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &obj,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if err := s.lockPut(ctx, in, data); err != nil {
		return err
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return s.translate("put", key, err)
	}
	return nil
}

// smallObject is what Put reads before it takes a part-sized buffer.
const smallObject = 64 << 10

// readPart fills buf from r. It returns io.EOF when the stream ended within
// buf (n may then be anything from 0 to len(buf)-1), nil when buf is full
// (the stream may or may not continue), or r's or ctx's error.
func readPart(ctx context.Context, r io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(destination.ContextReader(ctx, r), buf)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

func (s *Store) readError(ctx context.Context, key string, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// ContextReader noticed, or the source watches ctx too.
		return s.translate("put", key, err)
	}
	return s.newError("put", key, "reading the source: "+err.Error(), err, nil)
}

// multipart is one multipart upload in progress.
type multipart struct {
	s        *Store
	key, obj string // destination key and S3 key
	r        io.Reader
	uploadID *string
	bufs     *partBufs

	mu    sync.Mutex
	parts []types.CompletedPart
	err   error // the first failure; it cancels the others
}

func (mp *multipart) fail(err error, cancel context.CancelCauseFunc) {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	if mp.err == nil {
		mp.err = err
		cancel(err)
	}
}

// run uploads first (a full part), then second (n bytes, the last part if
// eof), then the rest of mp.r.
func (mp *multipart) run(ctx context.Context, first, second []byte, eof bool) error {
	s := mp.s
	in := &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &mp.obj}
	if s.checksums {
		// Parts carry the SDK's CRC32; AWS rejects them unless the upload
		// declared the algorithm.
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	if err := s.lockUpload(ctx, in); err != nil {
		return err
	}
	out, err := s.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return s.translate("put", mp.key, err)
	}
	mp.uploadID = out.UploadId

	upCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// sem holds a token per part in flight. With the buffer being filled,
	// at most Concurrency+1 buffers exist.
	sem := make(chan struct{}, s.concurrency)
	var wg sync.WaitGroup
	upload := func(num int32, buf []byte, n int) bool {
		select {
		case sem <- struct{}{}:
		case <-upCtx.Done():
			mp.bufs.put(buf)
			mp.fail(s.newError("put", mp.key, "cancelled", context.Cause(upCtx), nil), cancel)
			return false
		}
		wg.Go(func() {
			defer func() { <-sem }()
			defer mp.bufs.put(buf)
			in := &s3.UploadPartInput{
				Bucket:        &s.bucket,
				Key:           &mp.obj,
				UploadId:      mp.uploadID,
				PartNumber:    aws.Int32(num),
				Body:          bytes.NewReader(buf[:n]),
				ContentLength: aws.Int64(int64(n)),
			}
			if s.checksums {
				in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
			}
			s.lockPart(in, buf[:n])
			out, err := s.client.UploadPart(upCtx, in)
			if err != nil {
				mp.fail(s.explain("put", mp.key, fmt.Sprintf("part %d", num), err), cancel)
				return
			}
			mp.mu.Lock()
			mp.parts = append(mp.parts, completedPart(num, out))
			mp.mu.Unlock()
		})
		return true
	}

	buf, n := second, len(second)
	if upload(1, first, len(first)) {
		for num := int32(2); ; num++ {
			if int(num) > s.maxParts {
				mp.bufs.put(buf)
				mp.fail(s.newError("put", mp.key, fmt.Sprintf(
					"the stream is longer than %d parts of %s (%s): raise part_size",
					s.maxParts, mib(s.partSize), mib(s.capacity())), nil, nil), cancel)
				break
			}
			if !upload(num, buf, n) || eof {
				break
			}
			buf = mp.bufs.get(s.partFor(num + 1))
			var rerr error
			n, rerr = readPart(upCtx, mp.r, buf)
			if rerr == io.EOF && n == 0 {
				mp.bufs.put(buf)
				break
			}
			if rerr != nil && rerr != io.EOF {
				mp.bufs.put(buf)
				// If a part failed first, that failure is the error.
				mp.fail(s.readError(upCtx, mp.key, rerr), cancel)
				break
			}
			eof = rerr == io.EOF
		}
	}
	wg.Wait()

	if mp.err == nil {
		if err := ctx.Err(); err != nil {
			mp.err = s.newError("put", mp.key, "cancelled", context.Cause(ctx), nil)
		}
	}
	if mp.err == nil {
		slices.SortFunc(mp.parts, func(a, b types.CompletedPart) int {
			return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber))
		})
		_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          &s.bucket,
			Key:             &mp.obj,
			UploadId:        mp.uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: mp.parts},
		})
		if err == nil {
			return nil
		}
		mp.err = s.translate("put", mp.key, err)
	}
	if aerr := mp.abort(ctx); aerr != nil {
		return errors.Join(mp.err, aerr)
	}
	return mp.err
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// abort discards the upload's parts. It runs even when ctx is cancelled.
func (mp *multipart) abort(ctx context.Context) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := mp.s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket:   &mp.s.bucket,
		Key:      &mp.obj,
		UploadId: mp.uploadID,
	})
	if err == nil {
		return nil
	}
	return mp.s.explain("put", mp.key, fmt.Sprintf(
		"abort incomplete upload %s (its parts stay stored, and billed, until removed; a lifecycle rule AbortIncompleteMultipartUpload does it)",
		aws.ToString(mp.uploadID)), err)
}

// partFor is the size of part num (from 1): PartSize for the first
// growEvery parts, then doubling every growEvery parts up to S3's maximum,
// so memory stays (Concurrency+1) x PartSize for any object under
// growEvery x PartSize (2.5 GiB at the default) and an object can still reach
// S3's 5 TiB limit.
func (s *Store) partFor(num int32) int64 {
	size := s.partSize << min((num-1)/growEvery, 20)
	return min(size, MaxPartSize)
}

// capacity is the most a multipart upload of maxParts parts can hold.
func (s *Store) capacity() int64 {
	var n int64
	for i := int32(1); i <= int32(s.maxParts); i++ {
		n += s.partFor(i)
	}
	return n
}

// growEvery is how many parts share one size.
const growEvery = 500

// partBufs recycles the part buffers of one Put. Buffers are not shared
// between Puts: an idle store holds no memory, and a Put allocates at most
// the (Concurrency+1) buffers it has in use at once, whatever the GC does.
type partBufs struct {
	free chan []byte
}

func newPartBufs(n int) *partBufs {
	return &partBufs{free: make(chan []byte, n)}
}

// get returns a buffer of size bytes; smaller ones (parts grew) are dropped.
func (p *partBufs) get(size int64) []byte {
	for {
		select {
		case b := <-p.free:
			if int64(cap(b)) >= size {
				return b[:size]
			}
		default:
			return make([]byte, size)
		}
	}
}

func (p *partBufs) put(b []byte) {
	select {
	case p.free <- b:
	default: // cannot happen while at most cap(free) buffers exist
	}
}
