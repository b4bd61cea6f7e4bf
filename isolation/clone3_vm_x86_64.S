/*
 * long nucleus_clone3_vm(struct clone_args *args, size_t size,
 *                        int (*fn)(void *), void *arg);
 *
 * clone3(2) with CLONE_VM: the child starts on the stack given in args with
 * the parent's registers, so it cannot return into C code. This trampoline
 * keeps fn and arg in r8/r9 (the syscall instruction clobbers only rax, rcx
 * and r11), calls fn(arg) on the new stack and exits the child thread with
 * its return value. The parent gets clone3's result (pid or -errno) back.
 */
    .text
    .globl nucleus_clone3_vm
    .type nucleus_clone3_vm, @function
nucleus_clone3_vm:
    .cfi_startproc
    mov %rdx, %r8
    mov %rcx, %r9
    mov $435, %eax          /* __NR_clone3 */
    syscall
    test %rax, %rax
    jnz 1f
    /* child: rsp = stack + stack_size, 16-byte aligned */
    .cfi_undefined rip
    xor %ebp, %ebp
    mov %r9, %rdi
    call *%r8
    mov %eax, %edi
    mov $60, %eax           /* __NR_exit */
    syscall
    hlt
1:
    ret
    .cfi_endproc
    .size nucleus_clone3_vm, .-nucleus_clone3_vm

    .section .note.GNU-stack,"",@progbits
