#if canImport(Glibc)
import Glibc
#endif

/// Keeps the memory of the janitor's sweeps from staying with the process (glibc only; a
/// no-op elsewhere).
///
/// A sweep reads the broker's full vhost, user and permission listings (with 5,000
/// environments, about 10 MB of answers and what is decoded from them), all freed when the
/// sweep ends. glibc keeps freed memory for reuse, in the arena of the thread that allocated
/// it, and the sweep's parts run on several threads (the pool's, curl's). Measured with 5,000
/// environments on the broker, between sweeps: malloc held 23 MB of which 0.6 MB was in use,
/// in three arenas of 5 to 7 MB each.
///
/// Two causes, one remedy each. glibc raises its mmap threshold to the size of each large
/// block freed (up to 32 MB), so after the first listing every later one (a 7 MB body) is
/// carved out of an arena, and the trim threshold rises with it, so the arena keeps it; a
/// fixed threshold (`returnLargeBlocksAtOnce`) leaves such blocks mapped on their own and
/// unmapped when freed. What is left is the many small blocks (a vhost's record, a name),
/// freed in the middle of an arena, which only `malloc_trim` gives back (`release`, after
/// each sweep). Measured with the listings already read element by element: 27 MB resident
/// between sweeps with both, 41 to 43 MB with the threshold alone, 45 MB with the trim alone,
/// 49 MB with neither.
enum FreedMemory {
    /// glibc's initial mmap threshold, kept fixed from now on.
    static let mmapThreshold: Int32 = 128 * 1024

    /// Allocations over `mmapThreshold` get mappings of their own, returned to the kernel when
    /// freed. Call once, early (the executable does, before it serves).
    static func returnLargeBlocksAtOnce() {
        // M_MMAP_THRESHOLD in <malloc.h>. Setting it also turns off glibc's dynamic thresholds.
        _ = mallopt?(-3, mmapThreshold)
    }

    /// Gives the free pages of every arena back to the kernel (a few milliseconds).
    static func release() {
        _ = mallocTrim?(0)
    }

    // Looked up at run time: Swift's Glibc module does not import <malloc.h>. Nil on a C
    // library without them.
    private static let mallopt: (@convention(c) (Int32, Int32) -> Int32)? = symbol("mallopt")
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = symbol("malloc_trim")

    private static func symbol<F>(_ name: String) -> F? {
        #if canImport(Glibc)
        guard let address = dlsym(nil, name) else { return nil }
        return unsafeBitCast(address, to: F.self)
        #else
        return nil
        #endif
    }
}
