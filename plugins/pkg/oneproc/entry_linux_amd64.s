#include "go_asm.h"
#include "textflag.h"

#define SYS_sched_setaffinity 203
#define SYS_sched_getaffinity 204
#define SYS_getcpu 309

// entry is the process's first instruction when the binary is linked with
// -E (see Entry). It pins the starting thread to the CPU it runs on, so the
// Go runtime counts one CPU and starts with one P, and jumps to the
// runtime's own entry with the stack untouched. restoreAffinity, from this
// package's init, gives every thread the starting mask back. Any failure
// leaves the affinity as it was.
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
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
