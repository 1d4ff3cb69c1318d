#pragma once
void cb_placeholder(void);
