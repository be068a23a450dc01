/* cgroup.c: stub */
