//! An image mounted through a loop device without `mount -o loop`, whose search of the
//! machine's loop devices (sysfs, one entry per device) makes each mount slower the more
//! guests run: the kernel hands out a free device (`LOOP_CTL_GET_FREE`), one ioctl binds
//! the image to it (`LOOP_CONFIGURE`, with auto-clear: the device is freed when the
//! filesystem is unmounted), and mount(2) mounts it `nosuid,nodev`.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// Another process may take the free device between our two calls: try again this often.
const TRIES: usize = 16;

/// `struct loop_info64` of `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Mounts the ext4 in `image` on `dir`.
pub(super) fn mount(image: &Path, dir: &Path) -> std::io::Result<()> {
    let backing = OpenOptions::new().read(true).write(true).open(image)?;
    let (number, _device) = attach(&backing)?;
    let source = CString::new(format!("/dev/loop{number}"))?;
    let target = CString::new(dir.as_os_str().as_bytes())?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    // SAFETY: valid NUL-terminated strings; no data argument.
    let mounted = unsafe {
        libc::mount(source.as_ptr(), target.as_ptr(), c"ext4".as_ptr(), flags, std::ptr::null())
    };
    if mounted == 0 {
        return Ok(());
    }
    // Dropping the device (its only holder) detaches the image again: auto-clear.
    Err(std::io::Error::last_os_error())
}

/// A loop device bound to `backing`: its number, and the device open (its last close frees
/// it unless it is mounted by then).
fn attach(backing: &File) -> std::io::Result<(libc::c_int, File)> {
    let control = OpenOptions::new().read(true).write(true).open("/dev/loop-control")?;
    let mut last = std::io::Error::other("no free loop device");
    for _ in 0..TRIES {
        // SAFETY: an ioctl without argument on a descriptor we own.
        let number = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if number < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let device =
            OpenOptions::new().read(true).write(true).open(format!("/dev/loop{number}"))?;
        // SAFETY: all-zero is a valid loop_config.
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = backing.as_raw_fd() as u32;
        config.info.flags = LO_FLAGS_AUTOCLEAR;
        // SAFETY: `config` outlives the call and has the kernel's layout.
        if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE, &config) } == 0 {
            return Ok((number, device));
        }
        last = std::io::Error::last_os_error();
        if last.raw_os_error() != Some(libc::EBUSY) {
            return Err(last);
        }
    }
    Err(last)
}
