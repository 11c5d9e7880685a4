#include "textflag.h"

#define SYS_read	0
#define SYS_close	3
#define SYS_clone	56
#define SYS_setsid	112
#define SYS_exit_group	231
#define SYS_dup3	292
#define SYS_close_range	436
// CLONE_VM (0x100) | SIGCHLD (17): the parent's memory, a process of its own
#define CLONE_FLAGS	0x111

// func cloneWait(stack, fd uintptr) (pid, errno uintptr)
//
// The kernel keeps every register but AX, CX and R11 across SYSCALL: the
// child finds fd in BX and touches no memory but the byte its read would
// put on its stack, which no one writes.
TEXT ·cloneWait(SB),NOSPLIT,$0-32
	MOVQ	fd+8(FP), BX
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
	MOVQ	AX, pid+16(FP)
	MOVQ	$0, errno+24(FP)
	RET
failed:
	NEGQ	AX
	MOVQ	$0, pid+16(FP)
	MOVQ	AX, errno+24(FP)
	RET

child:
	MOVQ	BX, DI
	XORQ	SI, SI
	XORQ	DX, DX
	MOVQ	$SYS_dup3, AX
	SYSCALL
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
wait:
	XORQ	DI, DI
	MOVQ	SP, SI
	MOVQ	$1, DX
	MOVQ	$SYS_read, AX
	SYSCALL
	// EINTR cannot come (every signal blocked): any return is the end.
exit:
	XORQ	DI, DI
	MOVQ	$SYS_exit_group, AX
	SYSCALL
	JMP	exit
