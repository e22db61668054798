// Kernel family 'mmap' of the native backend: mmapFile(path) maps a whole file and hands it to JS as an external
// ArrayBuffer (the finalizer unmaps it). Not a file-format reader: callers parse the bytes (src/train/token-reader.ts).
//
// The mapping is MAP_PRIVATE over an O_RDONLY descriptor: the file is never modified. Pages are mapped
// PROT_READ|PROT_WRITE so that a stray JS write into the buffer copies that page privately instead of crashing the
// process with SIGSEGV. The file must not be truncated while mapped (reading past its new end raises SIGBUS).
#include <cerrno>
#include <cstring>
#include <string>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "napi_util.h"

namespace lmf {

static void throwErrno(napi_env env, const char* what, const std::string& path, int err) {
  std::string msg = std::string("mmapFile: ") + what + " '" + path + "': " + strerror(err);
  const char* code = nullptr;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  code = strerrorname_np(err);
  if (code) msg += std::string(" (") + code + ")";
#endif
  napi_throw_error(env, code, msg.c_str());
}

static void unmap(napi_env, void* data, void* hint) {
  munmap(data, reinterpret_cast<size_t>(hint));
}

static napi_value mmapFile(napi_env env, napi_callback_info info) {
  Args a(env, info, "mmapFile", 1);
  if (a.failed) return nullptr;
  size_t len = 0;
  if (napi_get_value_string_utf8(env, a.argv[0], nullptr, 0, &len) != napi_ok) {
    a.fail("expected a path string", 0);
    return nullptr;
  }
  std::string path(len, '\0');
  napi_get_value_string_utf8(env, a.argv[0], path.data(), len + 1, &len);

  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) { throwErrno(env, "cannot open", path, errno); return nullptr; }
  struct stat st;
  if (fstat(fd, &st) != 0) { int e = errno; close(fd); throwErrno(env, "cannot stat", path, e); return nullptr; }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    std::string msg = "mmapFile: '" + path + "' is not a regular file";
    napi_throw_error(env, "EINVAL", msg.c_str());
    return nullptr;
  }
  size_t size = static_cast<size_t>(st.st_size);
  napi_value ab;
  if (size == 0) {  // mmap of length 0 is EINVAL; an empty file is an empty buffer.
    close(fd);
    void* unused;
    napi_create_arraybuffer(env, 0, &unused, &ab);
    return ab;
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);  // the mapping keeps its own reference to the file
  if (p == MAP_FAILED) { throwErrno(env, "cannot map", path, e); return nullptr; }
  if (napi_create_external_arraybuffer(env, p, size, unmap, reinterpret_cast<void*>(size), &ab) != napi_ok) {
    munmap(p, size);
    napi_throw_error(env, nullptr, "mmapFile: this Node.js build does not allow external ArrayBuffers");
    return nullptr;
  }
  return ab;
}

void registerMmap(napi_env env, napi_value exports) {
  defineFunction(env, exports, "mmapFile", mmapFile);
}

}  // namespace lmf
