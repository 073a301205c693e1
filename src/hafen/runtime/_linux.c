/*
 * hafen.runtime._linux: the Linux calls a container's set-up needs and Python's posix
 * module lacks, as a CPython extension (built by scripts/setup).
 *
 * What runtime/_sys.py calls; runtime/_linux_ctypes.py makes the same calls through
 * ctypes where this module was not built (all but clone_vm_run, an init that shares the
 * runtime's memory, which only C can do). Each function takes what Python has (str or
 * bytes paths, ints), makes one call and raises OSError(errno, strerror) on failure;
 * _sys adds the message that names the call. No policy here: that is the runtime's.
 *
 * Why C: going through ctypes cost ~0.9 ms of each container start (loading _ctypes and
 * libffi, building the foreign-function objects, ~2 us a call on ~100 calls), and the
 * init's copy-on-write faults on ctypes' objects after the fork.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_bpf
#error "bpf(2) has no syscall number on this architecture"
#endif
#ifndef SYS_pivot_root
#error "pivot_root(2) has no syscall number on this architecture"
#endif
#ifndef SYS_seccomp
#error "seccomp(2) has no syscall number on this architecture"
#endif

#define CAP_VERSION_3 0x20080522
#define SECCOMP_SET_MODE_FILTER_ 1
#define SECCOMP_MODE_FILTER_ 2
#define CLONE_INTO_CGROUP_ 0x200000000ULL

/* struct clone_args up to cgroup (CLONE_ARGS_SIZE_VER2): older headers lack it. */
struct clone_args_v2 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};

struct sock_fprog_ {
    unsigned short len;
    void *filter;
};

struct cap_header_ {
    uint32_t version;
    int pid;
};

struct cap_data_ {
    uint32_t effective, permitted, inheritable;
};

/* "O&" converter: a str, bytes or path-like as the kernel takes it, or None as NULL. */
static int
optional_path(PyObject *obj, void *out)
{
    if (obj == NULL) { /* cleanup call after a failed parse */
        Py_CLEAR(*(PyObject **)out);
        return 1;
    }
    if (obj == Py_None) {
        *(PyObject **)out = NULL;
        return 1;
    }
    return PyUnicode_FSConverter(obj, out);
}

static const char *
bytes_or_null(PyObject *b)
{
    return b == NULL ? NULL : PyBytes_AS_STRING(b);
}

static PyObject *
raise_errno(void)
{
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *
linux_unshare(PyObject *self, PyObject *arg)
{
    long flags = PyLong_AsLong(arg);
    if (flags == -1 && PyErr_Occurred())
        return NULL;
    if (unshare((int)flags) < 0)
        return raise_errno();
    Py_RETURN_NONE;
}

static PyObject *
linux_setns(PyObject *self, PyObject *args)
{
    int fd, nstype;
    if (!PyArg_ParseTuple(args, "ii:setns", &fd, &nstype))
        return NULL;
    if (setns(fd, nstype) < 0)
        return raise_errno();
    Py_RETURN_NONE;
}

static PyObject *
linux_mount(PyObject *self, PyObject *args)
{
    PyObject *source = NULL, *target = NULL, *fstype = NULL, *data = NULL, *ret = NULL;
    unsigned long flags;
    int rc;
    if (!PyArg_ParseTuple(args, "O&O&O&kO&:mount", optional_path, &source,
                          PyUnicode_FSConverter, &target, optional_path, &fstype, &flags,
                          optional_path, &data))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    rc = mount(bytes_or_null(source), PyBytes_AS_STRING(target), bytes_or_null(fstype), flags,
               bytes_or_null(data));
    Py_END_ALLOW_THREADS
    if (rc < 0)
        raise_errno();
    else
        ret = Py_NewRef(Py_None);
done:
    Py_XDECREF(source);
    Py_XDECREF(target);
    Py_XDECREF(fstype);
    Py_XDECREF(data);
    return ret;
}

static PyObject *
linux_umount2(PyObject *self, PyObject *args)
{
    PyObject *target = NULL;
    int flags, rc;
    if (!PyArg_ParseTuple(args, "O&i:umount2", PyUnicode_FSConverter, &target, &flags))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = umount2(PyBytes_AS_STRING(target), flags);
    Py_END_ALLOW_THREADS
    Py_DECREF(target);
    if (rc < 0)
        return raise_errno();
    Py_RETURN_NONE;
}

static PyObject *
linux_pivot_root(PyObject *self, PyObject *args)
{
    PyObject *new_root = NULL, *put_old = NULL;
    long rc;
    if (!PyArg_ParseTuple(args, "O&O&:pivot_root", PyUnicode_FSConverter, &new_root,
                          PyUnicode_FSConverter, &put_old))
        return NULL; /* the converter released what it had made */
    rc = syscall(SYS_pivot_root, PyBytes_AS_STRING(new_root), PyBytes_AS_STRING(put_old));
    Py_DECREF(new_root);
    Py_DECREF(put_old);
    if (rc < 0)
        return raise_errno();
    Py_RETURN_NONE;
}

static PyObject *
linux_setrlimit(PyObject *self, PyObject *args)
{
    int resource;
    unsigned long long soft, hard;
    if (!PyArg_ParseTuple(args, "iKK:setrlimit", &resource, &soft, &hard))
        return NULL;
    struct rlimit64 limit = {.rlim_cur = soft, .rlim_max = hard};
    if (prlimit64(0, resource, &limit, NULL) < 0)
        return raise_errno();
    Py_RETURN_NONE;
}

static PyObject *
linux_statfs_type(PyObject *self, PyObject *arg)
{
    PyObject *path = NULL;
    struct statfs st;
    int rc;
    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    rc = statfs(PyBytes_AS_STRING(path), &st);
    Py_DECREF(path);
    if (rc < 0)
        return raise_errno();
    return PyLong_FromUnsignedLong((unsigned long)st.f_type);
}

static PyObject *
set_name(PyObject *arg, int (*call)(const char *, size_t))
{
    const char *name;
    Py_ssize_t len;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "the name must be a str");
        return NULL;
    }
    name = PyUnicode_AsUTF8AndSize(arg, &len);
    if (name == NULL)
        return NULL;
    if (call(name, (size_t)len) < 0)
        return raise_errno();
    Py_RETURN_NONE;
}

static PyObject *
linux_sethostname(PyObject *self, PyObject *arg)
{
    return set_name(arg, sethostname);
}

static PyObject *
linux_setdomainname(PyObject *self, PyObject *arg)
{
    return set_name(arg, setdomainname);
}

static PyObject *
linux_prctl(PyObject *self, PyObject *args)
{
    int option;
    unsigned long arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0;
    int rc;
    if (!PyArg_ParseTuple(args, "i|kkkk:prctl", &option, &arg2, &arg3, &arg4, &arg5))
        return NULL;
    rc = prctl(option, arg2, arg3, arg4, arg5);
    if (rc < 0)
        return raise_errno();
    return PyLong_FromLong(rc);
}

static PyObject *
linux_capset(PyObject *self, PyObject *args)
{
    unsigned long long effective, permitted, inheritable;
    if (!PyArg_ParseTuple(args, "KKK:capset", &effective, &permitted, &inheritable))
        return NULL;
    struct cap_header_ header = {.version = CAP_VERSION_3, .pid = 0};
    struct cap_data_ data[2];
    for (int i = 0; i < 2; i++) {
        data[i].effective = (uint32_t)(effective >> (32 * i));
        data[i].permitted = (uint32_t)(permitted >> (32 * i));
        data[i].inheritable = (uint32_t)(inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &header, data) < 0)
        return raise_errno();
    Py_RETURN_NONE;
}

static PyObject *
linux_seccomp_set_filter(PyObject *self, PyObject *arg)
{
    char *program;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(arg, &program, &size) < 0)
        return NULL;
    if (size % 8 != 0 || size / 8 > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "a BPF program is 1 to 65535 8-byte instructions");
        return NULL;
    }
    struct sock_fprog_ prog = {.len = (unsigned short)(size / 8), .filter = program};
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER_, 0, &prog);
    if (rc < 0 && errno == ENOSYS) /* kernels before 3.17 */
        rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER_, &prog, 0, 0);
    if (rc < 0)
        return raise_errno();
    Py_RETURN_NONE;
}

static PyObject *
linux_inet_dgram_socket(PyObject *self, PyObject *unused)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return raise_errno();
    return PyLong_FromLong(fd);
}

static PyObject *
linux_close_range(PyObject *self, PyObject *args)
{
    unsigned int first, last, flags;
    if (!PyArg_ParseTuple(args, "III:close_range", &first, &last, &flags))
        return NULL;
    if (syscall(SYS_close_range, first, last, flags) < 0)
        return raise_errno();
    Py_RETURN_NONE;
}

/* bpf(2) with a copy of ``attr`` (union bpf_attr, at most 256 bytes here). */
static PyObject *
linux_bpf(PyObject *self, PyObject *args)
{
    int cmd;
    Py_buffer attr;
    unsigned char copy[256];
    long rc;
    if (!PyArg_ParseTuple(args, "iy*:bpf", &cmd, &attr))
        return NULL;
    if (attr.len > (Py_ssize_t)sizeof copy) {
        PyBuffer_Release(&attr);
        PyErr_SetString(PyExc_ValueError, "bpf attr is longer than 256 bytes");
        return NULL;
    }
    memset(copy, 0, sizeof copy);
    memcpy(copy, attr.buf, (size_t)attr.len);
    rc = syscall(SYS_bpf, cmd, copy, (unsigned int)attr.len);
    PyBuffer_Release(&attr);
    if (rc < 0)
        return raise_errno();
    return PyLong_FromLong(rc);
}

/*
 * The address of a bytearray's bytes, for a pointer in a structure the kernel reads
 * (bpf's instructions, license and log). Valid while the bytearray lives unresized.
 */
static PyObject *
linux_buffer_address(PyObject *self, PyObject *arg)
{
    if (!PyByteArray_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "buffer_address takes a bytearray");
        return NULL;
    }
    return PyLong_FromVoidPtr(PyByteArray_AS_STRING(arg));
}

/*
 * os.fork(), with clone3 in place of fork(): the interpreter's fork bookkeeping runs
 * around it as os.fork runs it, with the GIL held throughout.
 */
static PyObject *
linux_clone_fork(PyObject *self, PyObject *args)
{
    unsigned long long flags;
    int cgroup_fd, saved_errno;
    long pid;
    if (!PyArg_ParseTuple(args, "Ki:clone_fork", &flags, &cgroup_fd))
        return NULL;
    struct clone_args_v2 clone_args;
    memset(&clone_args, 0, sizeof clone_args);
    clone_args.flags = flags | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP_ : 0);
    clone_args.exit_signal = SIGCHLD;
    clone_args.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;
    if (PySys_Audit("os.fork", NULL) < 0)
        return NULL;
    PyOS_BeforeFork();
    pid = syscall(SYS_clone3, &clone_args, sizeof clone_args);
    saved_errno = errno;
    if (pid == 0) {
        PyOS_AfterFork_Child();
        return PyLong_FromLong(0);
    }
    PyOS_AfterFork_Parent();
    if (pid < 0) {
        errno = saved_errno;
        return raise_errno();
    }
    return PyLong_FromLong(pid);
}

/*
 * An init that shares the runtime's memory (clone_vm_run).
 *
 * clone(CLONE_VM) instead of a fork: the child runs ``func`` (the init's Python set-up)
 * on the runtime's own thread state while the parent waits here with the GIL held and
 * every signal blocked, not running at all; ``func`` returns the exec plan, which the
 * child copies into C memory before it tells the parent (one byte on a pipe) that it has
 * left Python. From then on the two run at once in one address space, so the child uses
 * raw system calls only: no errno, no malloc, nothing of glibc's thread-local state,
 * which is the parent's. It resets the signals Python catches, waits for ``start`` on
 * the exec fifo and execs. No copy of the runtime's page tables, no copy-on-write
 * faults, and an exec with nothing of the runtime's to tear down: ~1.4 ms of a ~14 ms
 * ``run``.
 *
 * A child that dies inside Python (SIGKILL, the OOM killer) may leave the interpreter's
 * state half-changed, so the parent never returns to Python then: it execs the cleanup
 * command it was given (``delete --force`` and an error), prepared before the clone.
 */
#if defined(__x86_64__)
static inline long
raw4(long n, long a, long b, long c, long d)
{
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}
#define HAVE_RAW_SYSCALLS 1
#elif defined(__aarch64__)
static inline long
raw4(long n, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
#define HAVE_RAW_SYSCALLS 1
#endif

#ifdef HAVE_RAW_SYSCALLS
#define SMI_STACK (1 << 20)
#define KSIGSET 8 /* the kernel's sigset_t: 64 signals */

struct k_sigaction_ {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
};

struct smi_start {
    PyObject *func;
    int done_r, done_w;
    unsigned long mask; /* the parent's signal mask before it blocked everything */
};

/* The exec plan in C memory (malloc'd by the child while the parent waits; never freed:
 * the child execs, and the parent does not know these blocks). */
struct smi_plan {
    char *path, **argv, **envp, *fifo;
    long umask_, dir_fd;
    int resets[64];
    int nresets;
};

static char *
dup_bytes(PyObject *b)
{
    char *src;
    Py_ssize_t n;
    if (!PyBytes_Check(b) || PyBytes_AsStringAndSize(b, &src, &n) < 0)
        return NULL;
    char *out = malloc((size_t)n + 1);
    if (out != NULL) {
        memcpy(out, src, (size_t)n);
        out[n] = 0;
    }
    return out;
}

static char **
dup_list(PyObject *list)
{
    if (!PyList_Check(list))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    char **out = calloc((size_t)n + 1, sizeof(char *));
    for (Py_ssize_t i = 0; out != NULL && i < n; i++)
        if ((out[i] = dup_bytes(PyList_GET_ITEM(list, i))) == NULL)
            return NULL;
    return out;
}

/* (path: bytes, argv: list[bytes], env: list[bytes], umask: int, state_dir_fd: int,
 *  fifo: bytes, resets: list[int]) -> plan; 0 if it is not that */
static int
plan_from(PyObject *t, struct smi_plan *plan)
{
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 7)
        return 0;
    plan->path = dup_bytes(PyTuple_GET_ITEM(t, 0));
    plan->argv = dup_list(PyTuple_GET_ITEM(t, 1));
    plan->envp = dup_list(PyTuple_GET_ITEM(t, 2));
    plan->umask_ = PyLong_AsLong(PyTuple_GET_ITEM(t, 3));
    plan->dir_fd = PyLong_AsLong(PyTuple_GET_ITEM(t, 4));
    plan->fifo = dup_bytes(PyTuple_GET_ITEM(t, 5));
    PyObject *resets = PyTuple_GET_ITEM(t, 6);
    if (!PyList_Check(resets) || PyList_GET_SIZE(resets) > 64)
        return 0;
    plan->nresets = (int)PyList_GET_SIZE(resets);
    for (int i = 0; i < plan->nresets; i++)
        plan->resets[i] = (int)PyLong_AsLong(PyList_GET_ITEM(resets, i));
    return plan->path && plan->argv && plan->argv[0] && plan->envp && plan->fifo &&
           !PyErr_Occurred();
}

static void
raw_say(const char *a, const char *b)
{
    raw4(SYS_write, 2, (long)a, (long)strlen(a), 0);
    raw4(SYS_write, 2, (long)b, (long)strlen(b), 0);
    raw4(SYS_write, 2, (long)"\n", 1, 0);
}

static int
smi_child(void *arg)
{
    struct smi_start *start = arg; /* on the parent's stack: read it while it waits */
    int done_w = start->done_w;
    unsigned long mask = start->mask, all = ~0UL;
    struct smi_plan plan;
    memset(&plan, 0, sizeof plan);
    raw4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0, KSIGSET);
    raw4(SYS_close, start->done_r, 0, 0, 0); /* the parent's end: ours is done_w */
    PyObject *result = PyObject_CallNoArgs(start->func);
    int ok = result != NULL && plan_from(result, &plan);
    Py_XDECREF(result);
    PyErr_Clear();
    /* No signal may reach a handler of Python's in here once the parent runs again. */
    raw4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, 0, KSIGSET);
    raw4(SYS_write, done_w, (long)(ok ? "D" : "E"), 1, 0);
    raw4(SYS_close, done_w, 0, 0, 0);
    if (!ok)
        raw4(SYS_exit_group, 1, 0, 0, 0); /* func reported the error on its channel */
    /* From here on the parent runs too: raw system calls only. */
    struct k_sigaction_ dfl;
    memset(&dfl, 0, sizeof dfl);
    for (int i = 0; i < plan.nresets; i++)
        raw4(SYS_rt_sigaction, plan.resets[i], (long)&dfl, 0, KSIGSET);
    raw4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0, KSIGSET);
    long fd;
    do /* blocks until ``start`` opens the fifo for reading */
        fd = raw4(SYS_openat, plan.dir_fd, (long)plan.fifo, O_WRONLY | O_CLOEXEC, 0);
    while (fd == -EINTR);
    if (fd < 0) {
        raw_say("container init failed: cannot open the exec fifo ", plan.fifo);
        raw4(SYS_exit_group, 1, 0, 0, 0);
    }
    raw4(SYS_write, fd, (long)"0", 1, 0);
    raw4(SYS_close, fd, 0, 0, 0);
    raw4(SYS_close, plan.dir_fd, 0, 0, 0);
    raw4(SYS_umask, plan.umask_, 0, 0, 0);
    long rc = raw4(SYS_execve, (long)plan.path, (long)plan.argv, (long)plan.envp, 0);
    raw_say("exec failed: ", plan.argv[0]);
    raw4(SYS_exit_group, rc == -ENOENT ? 127 : 126, 0, 0, 0);
    return 0;
}

static PyObject *
linux_clone_vm_run(PyObject *self, PyObject *args)
{
    int flags;
    PyObject *func, *cleanup;
    int done[2];
    if (!PyArg_ParseTuple(args, "iOO!:clone_vm_run", &flags, &func, &PyList_Type, &cleanup))
        return NULL;
    char **cleanup_argv = dup_list(cleanup); /* before the clone: see the comment above */
    if (cleanup_argv == NULL || cleanup_argv[0] == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "clone_vm_run: a cleanup command of bytes");
        return NULL;
    }
    if (pipe2(done, O_CLOEXEC) < 0)
        return raise_errno();
    void *stack = mmap(NULL, SMI_STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        close(done[0]);
        close(done[1]);
        return raise_errno();
    }
    /* a guard page: an overflow faults instead of writing over the memory below, which
     * is the parent's too */
    mprotect(stack, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    struct smi_start start = {func, done[0], done[1], 0};
    memcpy(&start.mask, &old, sizeof start.mask);
    int pid = clone(smi_child, (char *)stack + SMI_STACK, flags | CLONE_VM | SIGCHLD, &start);
    if (pid < 0) {
        int saved = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        close(done[0]);
        close(done[1]);
        munmap(stack, SMI_STACK);
        errno = saved;
        return raise_errno();
    }
    /* the child runs Python now: raw calls only, until it says it has left */
    raw4(SYS_close, done[1], 0, 0, 0);
    char c = 0;
    long n;
    do
        n = raw4(SYS_read, done[0], (long)&c, 1, 0);
    while (n == -EINTR);
    if (n != 1) { /* it died inside Python: never go back there */
        raw4(SYS_execve, (long)cleanup_argv[0], (long)cleanup_argv, (long)environ, 0);
        raw4(SYS_exit_group, 1, 0, 0, 0);
    }
    close(done[0]);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* the stack stays mapped: the child runs on it until its exec */
    return Py_BuildValue("(iO)", pid, c == 'D' ? Py_True : Py_False);
}
#endif

static PyMethodDef linux_methods[] = {
    {"unshare", linux_unshare, METH_O, "unshare(flags): unshare(2)."},
    {"setns", linux_setns, METH_VARARGS, "setns(fd, nstype): setns(2)."},
    {"mount", linux_mount, METH_VARARGS,
     "mount(source, target, fstype, flags, data): mount(2); None for NULL."},
    {"umount2", linux_umount2, METH_VARARGS, "umount2(target, flags): umount2(2)."},
    {"pivot_root", linux_pivot_root, METH_VARARGS, "pivot_root(new_root, put_old)."},
    {"setrlimit", linux_setrlimit, METH_VARARGS,
     "setrlimit(resource, soft, hard): prlimit64(2) on this process; 2**64-1 is unlimited."},
    {"statfs_type", linux_statfs_type, METH_O, "statfs_type(path): statfs(2)'s f_type."},
    {"sethostname", linux_sethostname, METH_O, "sethostname(name)."},
    {"setdomainname", linux_setdomainname, METH_O, "setdomainname(name)."},
    {"prctl", linux_prctl, METH_VARARGS, "prctl(option, arg2=0, arg3=0, arg4=0, arg5=0)."},
    {"capset", linux_capset, METH_VARARGS,
     "capset(effective, permitted, inheritable): this thread's sets, as 64-bit masks."},
    {"seccomp_set_filter", linux_seccomp_set_filter, METH_O,
     "seccomp_set_filter(program): install a classic BPF program (8 bytes an instruction)."},
    {"inet_dgram_socket", linux_inet_dgram_socket, METH_NOARGS,
     "inet_dgram_socket(): socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC) as a bare fd."},
    {"close_range", linux_close_range, METH_VARARGS,
     "close_range(first, last, flags): close_range(2) (Linux 5.9; CLOSE_RANGE_CLOEXEC 5.11)."},
    {"bpf", linux_bpf, METH_VARARGS, "bpf(cmd, attr): bpf(2); its result (a fd for loads)."},
    {"buffer_address", linux_buffer_address, METH_O,
     "buffer_address(bytearray): the address of its bytes, for pointers in bpf's attr."},
#ifdef HAVE_RAW_SYSCALLS
    {"clone_vm_run", linux_clone_vm_run, METH_VARARGS,
     "clone_vm_run(flags, func, cleanup_argv): an init sharing this memory (see above); "
     "(pid, func's plan was taken)."},
#endif
    {"clone_fork", linux_clone_fork, METH_VARARGS,
     "clone_fork(flags, cgroup_fd): os.fork() through clone3 with CLONE_NEW* flags, and "
     "CLONE_INTO_CGROUP when cgroup_fd >= 0; 0 in the child, its pid in the parent."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef linux_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hafen.runtime._linux",
    .m_doc = "The Linux calls a container's set-up needs and posix lacks (runtime/_sys.py).",
    .m_size = 0,
    .m_methods = linux_methods,
};

/* What _sys expects (LINUX_API there): a module built from older sources is not used. */
#define LINUX_API 4

PyMODINIT_FUNC
PyInit__linux(void)
{
    PyObject *module = PyModule_Create(&linux_module);
    if (module != NULL && PyModule_AddIntConstant(module, "API", LINUX_API) < 0)
        Py_CLEAR(module);
    return module;
}
