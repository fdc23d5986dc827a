// Package caps reports which Linux capabilities the process lacks for a
// task, so that a permission error can say what to grant instead of EPERM.
package caps
