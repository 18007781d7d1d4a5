/* placeholder until the simulator lands */
int main(void) { return 0; }
