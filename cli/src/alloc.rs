//! The allocator of the command line and the benchmark: mimalloc, kept from giving memory back.
//!
//! The analyses allocate and free many small per-flow records; glibc's allocator spent about a
//! tenth of the run in its free lists. mimalloc by default purges (`madvise`) memory freed for
//! a second; an analysis frees and reuses per-flow memory all the time, so on a 1 GB capture it
//! took ~9,800 page faults, each zeroing a 2 MiB transparent huge page again (a tenth of the
//! CPU time), against ~300 without purging. A run is one process that ends with the analysis,
//! so nothing is lost by keeping what was freed until then: peak RSS is what it was.

/// mimalloc's `mi_option_purge_delay` (position in `mi_option_e` of mimalloc 3's `mimalloc.h`;
/// `libmimalloc-sys` does not name it for mimalloc 3). [`tests::purge_delay_is_the_option_we_think`]
/// checks it against the documented default, so a renumbering fails the tests.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never purge freed memory (see the module documentation). Call first thing in `main`.
pub fn keep_freed_memory() {
    // SAFETY: `mi_option_set` takes any option number and value; it only stores the value
    // (options are read again on every purge decision).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(o: libmimalloc_sys::mi_option_t) -> std::os::raw::c_long {
        // SAFETY: reads an option value.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_get(o)
        }
    }

    #[test]
    fn purge_delay_is_the_option_we_think() {
        // Neighbours with distinctive defaults pin the numbering: os_tag = 100, max_errors = 32.
        assert_eq!(option(MI_OPTION_PURGE_DELAY + 3), 100);
        assert_eq!(option(MI_OPTION_PURGE_DELAY + 4), 32);
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(option(MI_OPTION_PURGE_DELAY), 1000, "purge_delay defaults to 1 s");
        }
        keep_freed_memory();
        assert_eq!(option(MI_OPTION_PURGE_DELAY), -1);
    }
}
