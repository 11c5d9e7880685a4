#include "textflag.h"

#define SYS_read	0
#define SYS_write	1
#define SYS_close	3
#define SYS_clone	56
#define SYS_setsid	112
#define SYS_exit_group	231
#define SYS_dup3	292
#define SYS_close_range	436
// CLONE_VM (0x100) | SIGCHLD (17): the parent's memory, a process of its own
#define CLONE_FLAGS	0x111

// func clone1(stack, fd, p, n, wait uintptr) (pid, errno uintptr)
//
// The kernel keeps every register but AX, CX and R11 across SYSCALL, so
// the child finds fd, p, n and wait in BX, R12, R13 and R9 and touches
// no memory of its own but the byte a read would put on its stack, which
// no one writes: no push, no call.
TEXT ·clone1(SB),NOSPLIT,$0-56
	MOVQ	fd+8(FP), BX
	MOVQ	p+16(FP), R12
	MOVQ	n+24(FP), R13
	MOVQ	wait+32(FP), R9
	MOVQ	$CLONE_FLAGS, DI
	MOVQ	stack+0(FP), SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	MOVQ	$SYS_clone, AX
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	JLT	failed
	MOVQ	AX, pid+40(FP)
	MOVQ	$0, errno+48(FP)
	RET
failed:
	NEGQ	AX
	MOVQ	$0, pid+40(FP)
	MOVQ	AX, errno+48(FP)
	RET

child:
	CMPQ	BX, $0
	JEQ	others
	MOVQ	BX, DI
	XORQ	SI, SI
	XORQ	DX, DX
	MOVQ	$SYS_dup3, AX
	SYSCALL
others:
	MOVQ	$1, DI
	MOVL	$0xffffffff, SI
	XORQ	DX, DX
	MOVQ	$SYS_close_range, AX
	SYSCALL
	CMPQ	AX, $0
	JEQ	closed
	// Before Linux 5.9: one close each.
	MOVQ	$1, R8
closeone:
	MOVQ	R8, DI
	MOVQ	$SYS_close, AX
	SYSCALL
	INCQ	R8
	CMPQ	R8, $4096
	JLT	closeone
closed:
	MOVQ	$SYS_setsid, AX
	SYSCALL
	XORQ	DI, DI
	CMPQ	R9, $0
	JNE	wait
	MOVQ	R12, SI
	MOVQ	R13, DX
	MOVQ	$SYS_write, AX
	SYSCALL
	JMP	exit
wait:
	// Every signal is blocked: the read ends only when no writer is left.
	MOVQ	SP, SI
	MOVQ	$1, DX
	MOVQ	$SYS_read, AX
	SYSCALL
exit:
	XORQ	DI, DI
	MOVQ	$SYS_exit_group, AX
	SYSCALL
	JMP	exit
