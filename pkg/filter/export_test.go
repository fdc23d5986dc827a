package filter

// The corpus readers, for the external differential test of the real
// capture programs (difftest_linux_test.go).
var (
	ReadExpressions = readExpressions
	ReadFrames      = readFrames
	FramesFile      = framesFile
)
