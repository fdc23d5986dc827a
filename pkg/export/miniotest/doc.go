// Package miniotest runs a real MinIO server for tests: no fake, the same
// binary that CI caches. Start finds the minio binary (RINGTAP_MINIO, then
// $(go env GOBIN), then $(go env GOPATH)/bin), builds it with
//
//	go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
//
// if it is missing (a few minutes, once), and starts it on 127.0.0.1 with a
// temporary data directory, a static KMS key (so SSE-S3 and SSE-KMS work),
// and no update checks, call-home or console. The server is SIGKILLed with
// its process group at test cleanup; Kill and Restart (same port, same
// data) are for fault tests. Without a binary the test is skipped, or
// fails under CI=true.
package miniotest
