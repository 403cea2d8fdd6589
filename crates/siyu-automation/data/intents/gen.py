#!/usr/bin/env python3
"""Writes train.tsv and test.tsv (label<TAB>text) for siyu's intent classifier.

Each intent has hand-written base messages; `{p}` is a product slot. The
train split is drawn from BASE (and TRAIN_PRODUCTS), the test split only
from TEST_BASE (and TEST_PRODUCTS), a separate list of messages written
apart from BASE, so a test line never shares its base message with a
train line: it is not a copy or a trivial edit of one. Noise (greetings, particles, emoji,
full-width forms, typos) is drawn the same way for both. Deterministic
(fixed seed). Run from this directory: `python3 gen.py`.
"""
import random

TRAIN_PRODUCTS = ["面霜", "精华", "这款", "这个", "连衣裙", "口红", "洗面奶", "课程", "套餐", "防晒",
                  "那个包", "卫衣", "奶粉", "猫粮", "耳机", "这件", "同款", "小样", "礼盒", "会员"]
TEST_PRODUCTS = ["乳液", "眼霜", "这套", "衬衫", "香水", "训练营", "那款", "牛仔裤", "面膜", "蓝牙音箱"]

BASE = {
"ask_material": [
    "求资料", "求{p}的资料", "资料发我一份", "dd", "zl", "求zl", "滴滴", "dd我", "发我看看", "有链接吗",
    "发个链接", "{p}链接发一下", "能发下详情吗", "有{p}的介绍吗", "想了解一下{p}", "有没有产品手册",
    "课程大纲发我下", "求攻略", "有没有试听资料", "资料怎么领", "想要{p}的详细参数", "求分享",
    "蹲一个资料", "求带", "怎么领取资料", "有pdf吗", "有没有图片看看", "可以发我看下实拍吗",
    "能给我看看{p}的测评吗", "私我资料", "求私", "滴滴我一下", "想看看{p}的成分表", "求教程",
    "有没有说明书", "发下资料包", "来份资料", "求清单", "mark一下求资料", "想要{p}的图",
    "send me the brochure", "can I get more info", "please send the link", "do you have a catalog",
    "more details please", "where can I read about {p}", "share the material pls", "info pls",
    "资料在哪里看", "有没有详细介绍", "求个链接", "发个视频看看", "有没有{p}的对比图", "求干货",
    "zl发我", "求资料包谢谢", "我也想要资料", "同求", "可以私发我吗", "能发个文档吗",
],
"price": [
    "多少钱", "{p}多少钱", "价格多少", "怎么卖", "jg多少", "{p}什么价", "贵吗", "{p}贵不贵", "报个价",
    "多钱", "啥价格", "有优惠吗", "现在什么价", "{p}活动价多少", "打折吗", "能便宜点吗", "包邮吗",
    "价格发我", "jg", "{p}怎么收费", "学费多少", "有没有优惠券", "最低多少", "团购价多少",
    "一盒多少钱", "价位多少", "能不能少点", "多少米", "问下价格", "{p}原价多少", "几块钱", "多少一瓶",
    "有折扣吗", "会员价多少", "批发价多少", "{p}多少一个", "收费吗", "要钱吗", "免费吗", "价格表有吗",
    "how much", "price?", "how much is {p}", "what's the price", "any discount", "is it expensive",
    "cost?", "how much for two", "价格美丽吗", "这价格还能降吗", "直播间价格多少", "比官网便宜吗",
    "{p}现在啥价", "jg发下", "多少💰", "价钱多少", "双十一什么价", "买二送一吗",
],
"buy": [
    "怎么买", "我要下单", "要一个", "拍了", "马上要", "已拍", "我要{p}", "给我来一个", "怎么下单",
    "下单了", "想买{p}", "帮我留一个", "我要两件", "付款了", "在哪里拍", "购买链接", "买了",
    "来一份", "我要买", "{p}我要了", "直接拍吗", "怎么付款", "可以下单吗", "已付款请发货", "要了要了",
    "给我留一套", "我想入手{p}", "冲了", "下单链接给我", "已经拍下了", "想要一个{p}", "我买",
    "加购了", "帮我下单", "能货到付款吗", "怎么报名", "我报名", "要三盒", "马上下单", "必须拿下",
    "I want to buy", "I'll take one", "order placed", "how do I order", "I want {p}", "buy now",
    "just paid", "add me one", "拍下了记得发货", "{p}给我来两个", "我要入", "已下单", "买买买",
    "立刻要", "我要订", "预定一个", "可以拍了吗", "下单下单", "冲冲冲",
],
"after_sales": [
    "退货", "我要退货", "怎么换货", "{p}坏了", "发错货了", "物流到哪了", "快递到哪了", "什么时候发货",
    "还没收到货", "{p}有破损", "能退款吗", "申请售后", "尺码不对想换", "少发了一件", "快递一直不动",
    "单号多少", "怎么还没到", "退款什么时候到账", "{p}漏液了", "用了过敏想退", "收到的是坏的",
    "怎么申请退款", "换个颜色可以吗", "物流信息不更新", "发货了吗", "七天无理由吗", "{p}质量有问题",
    "保修怎么弄", "包装压坏了", "少了赠品", "发票怎么开", "退货地址发我", "快递丢了", "催一下发货",
    "能补发吗", "{p}用不了", "开不了机", "颜色发错了", "地址写错了能改吗", "改地址",
    "where is my order", "refund please", "it's broken", "wrong item received", "tracking number?",
    "I want to return {p}", "not delivered yet", "exchange size", "item damaged", "退换货流程",
    "快递怎么这么慢", "退款进度", "寄回去运费谁出", "{p}少了一个", "货到了但是坏的", "查下物流",
    "多久能到", "已经退回了", "换货寄出了", "维修多久",
],
"complaint": [
    "投诉", "我要投诉", "差评", "骗子", "12315", "太差了", "什么垃圾{p}", "我要打12315", "你们就是骗人的",
    "服务太差", "再不处理就投诉", "给差评", "客服态度恶劣", "坑人", "虚假宣传", "要曝光你们",
    "无良商家", "举报你们", "等了三天没人理", "气死我了", "{p}跟宣传完全不一样", "黑店", "欺诈",
    "我要找消协", "退款不给退我要投诉", "骗钱", "垃圾客服", "你们什么态度", "太坑了", "再也不买了",
    "{p}假货吧", "严重不满", "找你们领导", "去平台投诉你们", "恶心", "一星", "避雷", "大家别买",
    "态度差", "欺骗消费者", "我要维权", "差劲", "烂透了", "忽悠人", "搞什么鬼",
    "terrible service", "this is a scam", "I will report you", "worst {p} ever", "fraud",
    "very disappointed", "file a complaint", "你们太过分了", "已经向平台投诉", "垃圾", "服务烂",
    "拖了一个星期还不处理", "再这样我报警了", "割韭菜",
],
"opt_out": [
    "退订", "别发了", "TD", "拉黑", "unsubscribe", "不要再发了", "取消订阅", "别再给我发消息",
    "不需要", "请勿打扰", "烦死了别发", "退订谢谢", "td", "回T退订", "T", "不要推送了", "删了吧",
    "取消关注", "别骚扰我", "再发拉黑", "把我移出群", "不想收到这些", "停止发送", "退群", "别加我了",
    "不要营销短信", "取关了", "以后别联系我", "我不感兴趣别发了", "天天发烦不烦", "屏蔽",
    "stop", "STOP", "unsub", "remove me", "no more messages", "opt out", "don't text me",
    "please stop sending", "取消推送", "关闭通知", "退出会员推送", "不要打电话了", "骚扰",
    "别刷屏了", "退订退订", "求别发", "请删除我的号码", "不接收", "拒收", "不用再发了",
    "把我删了", "别推了", "我已经退订了还在发", "再发投诉你们", "退", "N", "取消",
],
"other": [
    "在吗", "哈哈", "谢谢", "好的", "😂", "你好", "在不在", "哈哈哈哈", "收到", "嗯嗯", "好滴",
    "早上好", "晚安", "辛苦了", "👍", "OK", "ok", "知道了", "666", "棒", "主播好美", "今天天气真好",
    "你们几点下班", "客服在吗", "hello", "hi", "thanks", "good morning", "lol", "nice",
    "主播哪里人", "背景音乐叫什么", "来了来了", "打卡", "支持", "加油", "哈喽", "亲", "可以可以",
    "太可爱了", "好看", "🌹", "🙏", "❤️", "收到谢谢", "明白", "👌", "好哒", "嗯", "哦哦",
    "你是机器人吗", "有人吗", "路过", "第一", "主播辛苦", "今天直播几点", "你们公司在哪",
    "哈哈笑死", "好的呢", "晚上好",
],
}

# More train messages per intent.
MORE = {
"ask_material": [
    "麻烦发下资料", "能不能发我一份介绍", "想看看详情页", "有没有宣传册", "给个链接呗", "求{p}使用方法",
    "有没有{p}的视频", "资料能发邮箱吗", "想先看看资料再决定", "求个详细版", "有没有试用装介绍",
    "dd一下", "zl有吗", "求zl谢谢", "可以dd我吗", "lj发一下", "求lj", "想了解下课程内容",
    "有没有买家秀", "发几张图看看", "详情发我", "可以看看{p}的参数吗", "有没有{p}的使用教程",
    "能发个介绍视频吗", "想要电子版", "资料可以分享一下吗", "求个直播回放", "有资料可以参考吗",
    "send me details", "can you share the pdf", "is there a manual", "link please",
],
"price": [
    "这个怎么卖", "{p}价格", "什么价位", "多少钱一件", "多少钱一套", "能优惠吗", "还有没有更便宜的",
    "jg多少呀", "jg私我", "价格私聊", "多少钱呀", "{p}贵吗", "太贵了能打折吗", "包邮价多少",
    "有满减吗", "新人价多少", "两件多少钱", "现在买有优惠吗", "{p}要多少钱", "多少钱能拿",
    "报价单发我", "收费标准", "一年多少钱", "price please", "how much does {p} cost",
    "is there a coupon", "what's the cost", "any promo", "到手价多少", "券后多少钱", "怎么收费的",
],
"buy": [
    "我要一个", "给我来一件", "{p}怎么买", "在哪下单", "帮我下个单", "拍了拍了", "我拍了",
    "已经付了", "马上拍", "这就下单", "买两个", "我想买", "可以买了吗", "给我留两件", "订一个",
    "我要报名", "怎么购买", "我下单了请尽快发货", "现在就要", "来两份", "我全要了", "要要要",
    "{p}还有货吗我要", "刚付款", "下了单了", "i'll buy it", "take my money", "ordering now",
    "where to buy", "我要拍{p}", "下单啦", "拍好了",
],
"after_sales": [
    "我的快递呢", "怎么还不发货", "{p}用了两天就坏了", "我要换一个", "东西有问题", "申请退款",
    "能退吗", "退款还没到", "发的不是我要的", "包裹显示签收了但我没收到", "快递被退回了",
    "物流停了好几天", "{p}有划痕", "少件了", "尺码大了能换小一码吗", "退货运费险有吗",
    "怎么联系售后", "售后电话多少", "{p}不工作了", "质量不好想退", "几天能发货", "帮我查下快递",
    "订单号发你了", "换货怎么操作", "还没发货能取消吗", "my package is late", "can I get a refund",
    "the {p} arrived damaged", "wrong size", "return policy?", "发错颜色了", "到货破了",
],
"complaint": [
    "我要投诉你们", "服务真差", "什么破东西", "你们是骗子吧", "打12315了", "已经打了12315",
    "给你们差评", "必须给差评", "态度太差了", "说好的退款呢骗子", "太坑人了", "垃圾店",
    "再也不会买了", "你们这是欺诈", "要去消协投诉", "我要曝光", "去黑猫投诉", "太差劲了吧",
    "一点诚信都没有", "客服不回消息我要投诉", "质量差还不给退", "{p}就是垃圾", "无语了太差了",
    "投诉你们客服", "差评差评", "骗人的玩意", "你们这样做生意的吗", "scam", "awful",
    "i want to complain", "worst service", "要举报",
],
"opt_out": [
    "别再发了", "不要给我发了", "退订谢谢", "我要退订", "TD谢谢", "td退订", "回td", "拉黑了",
    "再发就拉黑", "不要再打扰我", "别发广告", "不要推广告了", "取消短信", "不需要谢谢别发了",
    "请不要再联系我", "别烦我", "不想收", "删除我", "退订所有消息", "关掉推送", "我不要这些消息",
    "别给我发了烦", "每天都发烦死", "停", "stop sending", "unsubscribe me", "please remove me",
    "no thanks stop", "别发了谢谢", "不要再推了", "别加我", "退出",
],
"other": [
    "你好呀", "哈哈哈", "谢谢啦", "好的谢谢", "😂😂", "🤣", "嗯嗯好的", "了解", "没事了",
    "主播好", "来啦", "好棒", "厉害", "真不错", "哈哈好", "早", "下午好", "周末愉快", "你在干嘛",
    "今天好冷", "我先看看", "随便看看", "好滴谢谢", "不客气", "拜拜", "再见", "ok的", "hello there",
    "thank you", "haha", "good night", "bye",
],
}

# The test split's base messages: written apart from BASE and MORE.
TEST_BASE = {
"ask_material": [
    "有没有详细的资料介绍一下", "麻烦dd我一份", "zl在哪看", "能把{p}的链接给我吗", "有产品图片吗",
    "想要一份价目以外的介绍资料", "求一下课程资料", "资料能私发吗", "有没有{p}的使用说明",
    "求个详情链接", "想看看实物图", "给我发点资料", "could you send more information",
    "any brochure for {p}", "发我详细资料",
],
"price": [
    "{p}多少钱啊", "价格怎么样", "jg多少钱", "贵不贵呀", "这个啥价", "能不能打个折", "有活动价吗",
    "多少钱能包邮", "{p}一个多少", "价格能便宜吗", "现在多少钱", "how much is this", "price for {p}?",
    "多少钱一盒", "优惠价是多少",
],
"buy": [
    "我想下单", "给我来一个{p}", "已经拍下", "怎么买呀", "我要了", "拍下了", "马上要一个",
    "帮我拍一个", "下单了快发货", "要两个{p}", "我想入手", "已付款", "I want to order {p}",
    "buying one", "哪里可以买",
],
"after_sales": [
    "{p}坏了怎么办", "退货怎么退", "换货流程是什么", "我的快递到哪了", "发错货了怎么处理",
    "物流一直没更新", "还没收到{p}", "退款怎么还没到", "收到的东西破了", "什么时候能发货",
    "想换个尺码", "漏发了一件", "my order hasn't arrived", "{p} is broken", "能不能退款",
],
"complaint": [
    "你们太差了我要投诉", "等着差评吧", "骗子公司", "我去12315投诉", "什么破服务", "垃圾产品",
    "太坑了吧你们", "我要去平台举报", "客服态度太差了", "虚假宣传我要投诉", "{p}完全是骗人的",
    "再不退款就投诉", "这服务太烂了", "I'm filing a complaint", "total scam",
],
"opt_out": [
    "退订！", "别再发消息了", "回复TD", "不要再给我发了", "把我拉黑吧", "请退订", "别发了烦不烦",
    "取消订阅谢谢", "不要骚扰我", "以后不要发了", "不想再收到了", "stop messaging me",
    "unsubscribe please", "别推送了", "退订不要再发",
],
"other": [
    "在吗在吗", "哈哈哈笑死我了", "谢谢你", "好的知道了", "😂😂😂", "你好啊", "辛苦啦", "晚安啦",
    "早上好呀", "主播好漂亮", "今天几号", "thanks a lot", "hey guys", "好哒收到", "👍👍",
],
}

PREFIX = ["", "", "", "", "亲", "亲，", "你好，", "在吗 ", "hi ", "老师，", "姐妹", "宝，", "您好", "哈喽，", "请问", "那个，", "问下，"]
SUFFIX = ["", "", "", "", "？", "?", "！", "!", "~", "呀", "啊", "哈", "谢谢", "😂", "🙏", "😊", "。", "??", "呢", "啦", "哦", "👍"]
TYPOS = {"资料": ["资科", "滋料"], "多少": ["多shao", "多小"], "退货": ["退或"], "投诉": ["投述"],
         "快递": ["快地"], "下单": ["下蛋"], "链接": ["连接", "链結"], "价格": ["价个"], "退订": ["退定"],
         "谢谢": ["xx", "谢啦"], "什么": ["sm", "啥"], "怎么": ["zm", "咋"], "可以": ["ky", "可"]}

def fullwidth(s):
    out = []
    for c in s:
        o = ord(c)
        if 0x21 <= o <= 0x7e:
            out.append(chr(o + 0xfee0))
        elif c == " ":
            out.append("\u3000")
        else:
            out.append(c)
    return "".join(out)

def noisy(rng, base, products):
    t = base.replace("{p}", rng.choice(products))
    if rng.random() < 0.15:
        for k, vs in TYPOS.items():
            if k in t:
                t = t.replace(k, rng.choice(vs), 1)
                break
    t = rng.choice(PREFIX) + t + rng.choice(SUFFIX)
    if rng.random() < 0.1:
        t = t.upper() if rng.random() < 0.5 else t.capitalize()
    if rng.random() < 0.12:
        t = fullwidth(t)
    return t.strip() or base

def build(bases, products, n, rng, taken):
    out = []
    seen = set()
    tries = 0
    while len(out) < n and tries < n * 200:
        tries += 1
        t = noisy(rng, rng.choice(bases), products)
        if t in seen or t in taken:
            continue
        seen.add(t)
        out.append(t)
    return out

def main():
    rng = random.Random(20261204)
    train, test = [], []
    for label, bases in BASE.items():
        train_bases = bases + MORE[label]
        test_bases = TEST_BASE[label]
        assert not set(train_bases) & set(test_bases), label
        tr = build(train_bases, TRAIN_PRODUCTS, 500, rng, set())
        te = build(test_bases, TEST_PRODUCTS, 60, rng, set(tr))
        train += [(label, t) for t in tr]
        test += [(label, t) for t in te]
    rng.shuffle(train)
    rng.shuffle(test)
    for name, rows in (("train.tsv", train), ("test.tsv", test)):
        with open(name, "w", encoding="utf-8") as f:
            for label, t in rows:
                assert "\t" not in t and "\n" not in t
                f.write(f"{label}\t{t}\n")

if __name__ == "__main__":
    main()
