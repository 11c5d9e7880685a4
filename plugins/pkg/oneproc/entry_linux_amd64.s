#include "go_asm.h"
#include "textflag.h"

#define SYS_sched_setaffinity 203
#define SYS_sched_getaffinity 204
#define SYS_getcpu 309
#define SYS_madvise 28

// entry is the process's first instruction when the binary is linked with
// -E (see Entry). It has the kernel map the binary's code and data before
// the runtime touches them (see populate_linux_amd64.go), then pins the
// starting thread to the CPU it runs on, so the Go runtime counts one CPU
// and starts with one P, and jumps to the runtime's own entry with the
// stack untouched. restoreAffinity, from this package's init, gives every
// thread the starting mask back. Any failure leaves the mapping to page
// faults, or the affinity as it was.
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
	// madvise(text, rodataEnd-text, MADV_POPULATE_READ): the code and
	// read-only data, mapped from the page cache in one call.
	LEAQ	runtime·text(SB), DI
	ANDQ	$~(const_pageSize-1), DI
	LEAQ	runtime·noptrdata(SB), SI
	ANDQ	$~(const_pageSize-1), SI
	SUBQ	DI, SI
	MOVQ	$const_madvPopulateRead, DX
	MOVQ	$SYS_madvise, AX
	SYSCALL
	MOVQ	AX, ·populatedCode(SB)

	// madvise(data, end-data, MADV_POPULATE_WRITE) from the first data page
	// to smallBSS past the end of bss, or the end of noptrbss if nearer.
	LEAQ	runtime·noptrdata(SB), DI
	ANDQ	$~(const_pageSize-1), DI
	LEAQ	runtime·ebss(SB), SI
	ADDQ	$const_smallBSS, SI
	LEAQ	runtime·enoptrbss(SB), R8
	CMPQ	SI, R8
	CMOVQHI	R8, SI
	SUBQ	DI, SI
	MOVQ	$const_madvPopulateWrite, DX
	MOVQ	$SYS_madvise, AX
	SYSCALL
	MOVQ	AX, ·populatedData(SB)

	// sched_getaffinity(0, len(startMask), &startMask) returns the bytes written.
	MOVQ	$0, DI
	MOVQ	$const_maskBytes, SI
	LEAQ	·startMask(SB), DX
	MOVQ	$SYS_sched_getaffinity, AX
	SYSCALL
	CMPQ	AX, $0
	JLE	run
	MOVQ	AX, ·startMaskLen(SB)

	// getcpu(&cpu, nil, nil)
	LEAQ	·startCPU(SB), DI
	MOVQ	$0, SI
	MOVQ	$0, DX
	MOVQ	$SYS_getcpu, AX
	SYSCALL
	CMPQ	AX, $0
	JNE	run

	// pinMask[cpu/64] = 1 << (cpu%64), for a cpu inside the mask's words.
	MOVL	·startCPU(SB), CX
	MOVQ	CX, BX
	SHRQ	$6, BX
	CMPQ	BX, $const_maskWords
	JAE	run
	ANDQ	$63, CX
	MOVQ	$1, R8
	SHLQ	CX, R8
	LEAQ	·pinMask(SB), R9
	MOVQ	R8, (R9)(BX*8)

	// sched_setaffinity(0, len(pinMask), &pinMask)
	MOVQ	$0, DI
	MOVQ	$const_maskBytes, SI
	LEAQ	·pinMask(SB), DX
	MOVQ	$SYS_sched_setaffinity, AX
	SYSCALL
	CMPQ	AX, $0
	JNE	run
	MOVB	$1, ·pinned(SB)

run:
	JMP	_rt0_amd64_linux(SB)
