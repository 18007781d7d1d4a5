/* Keeps the shared test helper library non-empty until helpers land in tests/common/. */
int kftest_placeholder;
